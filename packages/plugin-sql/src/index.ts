import { definePlugin } from '@anchovies/core'

/** The sql plugin (operators arrive with their own issue). */
export default definePlugin({ name: 'sql', operators: {}, connections: {} })
