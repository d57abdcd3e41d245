import { definePlugin } from '@anchovies/core'

/** The azblob plugin (operators arrive with their own issue). */
export default definePlugin({ name: 'azblob', operators: {}, connections: {} })
