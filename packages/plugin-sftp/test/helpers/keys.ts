import { createCipheriv, createHash, createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'

function sshString(b: Buffer | string): Buffer {
  const buf = typeof b === 'string' ? Buffer.from(b) : b
  const len = Buffer.alloc(4)
  len.writeUInt32BE(buf.length)
  return Buffer.concat([len, buf])
}

function mpint(b64url: string): Buffer {
  let b = Buffer.from(b64url, 'base64url')
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1)
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b])
  return sshString(b)
}

/** An RSA key pair as PKCS#1 PEM, its OpenSSH public line and a PuTTY v2 `.ppk` (optionally aes256-cbc encrypted). */
export interface RsaTestKey {
  readonly pem: string
  readonly publicLine: string
  ppk(passphrase?: string): string
}

/** Generates an RSA key for tests (ssh2 reads PuTTY v2 RSA keys; puttygen is not needed). */
export function rsaTestKey(): RsaTestKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = (privateKey as KeyObject).export({ format: 'jwk' }) as Record<string, string>
  const pub = Buffer.concat([sshString('ssh-rsa'), mpint(jwk.e!), mpint(jwk.n!)])
  const pem = (privateKey as KeyObject).export({ type: 'pkcs1', format: 'pem' }).toString()
  return {
    pem,
    publicLine: `ssh-rsa ${pub.toString('base64')} anchovies-test`,
    ppk(passphrase) {
      const comment = 'anchovies-test'
      let priv = Buffer.concat([mpint(jwk.d!), mpint(jwk.p!), mpint(jwk.q!), mpint(jwk.qi!)])
      const encryption = passphrase ? 'aes256-cbc' : 'none'
      if (passphrase) {
        const pad = 16 - (priv.length % 16)
        priv = Buffer.concat([priv, createHash('sha1').update(priv).digest().subarray(0, pad)])
      }
      const macData = Buffer.concat([
        sshString('ssh-rsa'),
        sshString(encryption),
        sshString(comment),
        sshString(pub),
        sshString(priv),
      ])
      const macKey = createHash('sha1')
        .update('putty-private-key-file-mac-key')
        .update(passphrase ?? '')
        .digest()
      const mac = createHmac('sha1', macKey).update(macData).digest('hex')
      let stored = priv
      if (passphrase) {
        const key = Buffer.concat([
          createHash('sha1')
            .update(Buffer.from([0, 0, 0, 0]))
            .update(passphrase)
            .digest(),
          createHash('sha1')
            .update(Buffer.from([0, 0, 0, 1]))
            .update(passphrase)
            .digest(),
        ]).subarray(0, 32)
        const c = createCipheriv('aes-256-cbc', key, Buffer.alloc(16))
        c.setAutoPadding(false)
        stored = Buffer.concat([c.update(priv), c.final()])
      }
      const lines = (b: Buffer): string[] => b.toString('base64').match(/.{1,64}/g) ?? []
      const pubLines = lines(pub)
      const privLines = lines(stored)
      return [
        'PuTTY-User-Key-File-2: ssh-rsa',
        `Encryption: ${encryption}`,
        `Comment: ${comment}`,
        `Public-Lines: ${pubLines.length}`,
        ...pubLines,
        `Private-Lines: ${privLines.length}`,
        ...privLines,
        `Private-MAC: ${mac}`,
        '',
      ].join('\n')
    },
  }
}
