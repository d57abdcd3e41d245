import { describe, expect, it } from 'vitest'
import { loadDocument, resolveSettings } from '../../src/config/load-config.js'

const resolve = (flags: Record<string, unknown>, env: Record<string, string>, text?: string) => {
  const problems: string[] = []
  const src = { flags, env, configText: text, cwd: '/nonexistent' }
  const s = resolveSettings(src, loadDocument(src, problems), problems)
  return { s, problems }
}

describe('settings precedence', () => {
  it('flag > env > config: > default', () => {
    expect(resolve({}, {}).s.interval).toBe(60)
    expect(resolve({}, {}, 'config: {interval: 5}').s.interval).toBe(5)
    expect(resolve({}, { ACHVY_INTERVAL: '7' }, 'config: {interval: 5}').s.interval).toBe(7)
    expect(resolve({ interval: '9' }, { ACHVY_INTERVAL: '7' }, 'config: {interval: 5}').s.interval).toBe(9)
  })

  it('lets a false flag override a true env value', () => {
    expect(resolve({}, { ACHVY_FAIL_FAST: 'true' }).s.fail_fast).toBe(true)
    expect(resolve({ fail_fast: false }, { ACHVY_FAIL_FAST: 'true' }).s.fail_fast).toBe(false)
    expect(resolve({}, { ACHVY_IS_TASK_EXECUTOR: 'no' }).s.service).toBe(true)
    expect(resolve({}, {}, 'config: {is_task_executor: false}').s.service).toBe(true)
    expect(resolve({ service: false }, { ACHVY_IS_TASK_EXECUTOR: 'false' }).s.service).toBe(false)
  })

  it('splits env lists on commas and keeps repeated flags', () => {
    expect(resolve({}, { ACHVY_UPSTREAM: 'a, b' }).s.upstream).toEqual(['a', 'b'])
    expect(resolve({ upstream: ['x', 'y'] }, { ACHVY_UPSTREAM: 'a' }).s.upstream).toEqual(['x', 'y'])
  })

  it('uses ACHVY_HOME when no datastore is given, and --prod sets the user', () => {
    expect(resolve({}, { ACHVY_HOME: '/h' }).s.datastore).toBe('/h')
    expect(resolve({}, { ACHVY_HOME: '/h', ACHVY_DATASTORE: '/d' }).s.datastore).toBe('/d')
    const problems: string[] = []
    const src = { flags: { user: 'me' }, env: {}, cwd: '/', prod: true }
    expect(resolveSettings(src, loadDocument(src, problems), problems).user).toBe('prod')
  })

  it('collects every problem', () => {
    const { problems } = resolve(
      { concurrency: '0' },
      { ACHVY_FAIL_FAST: 'maybe', ACHVY_LOG_LEVEL: 'loud' },
      'config: {nope: 1}\nextra: 2',
    )
    expect(problems).toHaveLength(5)
  })
})
