import { AnchoviesError, isAnchoviesError } from '@anchovies/core'
import { describe, expect, it } from 'vitest'
import { BadRowError, ERROR_CODES, SftpError } from '../src/index.js'

describe('sftp errors', () => {
  it('are AnchoviesErrors with one of the exported codes', () => {
    const err = new SftpError('ANCH_ERR_SFTP_PATH', 'listing /in: no such folder', { cause: new Error('ENOENT') })
    expect(err).toBeInstanceOf(AnchoviesError)
    expect(isAnchoviesError(err, 'ANCH_ERR_SFTP_PATH')).toBe(true)
    expect(err.name).toBe('SftpError')
    expect(err.cause).toBeInstanceOf(Error)
    const bad = new BadRowError('ANCH_ERR_CSV_VALUE', '/a.csv', 7, 'n', 'not an integer', 'x')
    expect(isAnchoviesError(bad, 'ANCH_ERR_CSV_VALUE')).toBe(true)
    expect(Object.keys(ERROR_CODES)).toContain(bad.code)
    for (const [code, [meaning, fix]] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^ANCH_ERR_(SFTP|CSV)_[A-Z_]+$/)
      expect(meaning.length && fix.length).toBeGreaterThan(0)
    }
  })
})
