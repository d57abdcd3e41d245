import { definePlugin } from '@anchovies/core'

/** The sftp plugin (operators arrive with their own issue). */
export default definePlugin({ name: 'sftp', operators: {}, connections: {} })
