/// <reference lib="dom" />
// (the callbacks given to page.$eval and waitForFunction run in the browser)
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, mkdirSync } from 'node:fs'
import * as path from 'node:path'
import puppeteer, { type Browser } from 'puppeteer-core'
import { cleanupTempDirs, REPO } from '../helpers.js'
import { buildSchool, SECRET, type School } from './school-fixture.js'
import { serve, type Served } from './serve-helpers.js'

/** Debian's chromium (`.ci/run` installs it); override with CHROMIUM_PATH. */
const CHROMIUM =
  process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))

let school: School
let server: Served
let browser: Browser

beforeAll(async () => {
  if (!CHROMIUM) throw new Error('no chromium: apt-get install chromium (or set CHROMIUM_PATH)')
  school = await buildSchool()
  server = await serve(school.env)
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'],
    protocolTimeout: 60_000,
  })
})

afterAll(async () => {
  await browser?.close()
  await Promise.all([server?.stop(), school?.stop()])
  cleanupTempDirs()
})

describe('the school page in a real browser', () => {
  it('draws the DAG and the table with every anchovy, the failed one marked, and the failed run with its timeline and error', async () => {
    const page = await browser.newPage()
    const problems: string[] = []
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warn') problems.push(m.text())
    })
    page.on('pageerror', (e) => problems.push(String(e)))
    page.on('requestfailed', (r) => problems.push(`${r.url()} failed`))
    await page.setViewport({ width: 1400, height: 1000 })
    await page.goto(server.url, { waitUntil: 'load', timeout: 30_000 })
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 })
    await page.waitForSelector('#timeline .row', { timeout: 30_000 })

    const rows = await page.$$eval('#anchovies tbody tr', (trs) =>
      trs.map((tr) => [(tr as HTMLElement).dataset.id, (tr as HTMLElement).dataset.state]),
    )
    expect(Object.fromEntries(rows)).toEqual({
      dl: 'ok',
      old: 'stale',
      relay: 'ok',
      tick: 'running',
      up: 'failed',
      web: 'failed',
    })
    const upError = await page.$eval('#anchovies tbody tr[data-id="up"] td.error', (td) => td.textContent)
    expect(upError).toBe('table dl.sales: upload of sales failed on purpose')

    const nodes = await page.$$eval('#dag g.node', (gs) =>
      gs.map((g) => [(g as SVGGElement).dataset.key, (g as SVGGElement).dataset.state]),
    )
    expect(Object.fromEntries(nodes)).toMatchObject({
      'dev/dl': 'ok',
      'dev/up': 'failed',
      'dev/relay': 'ok',
      'dev/old': 'stale',
      'dev/tick': 'running',
    })
    expect(
      await page.$$eval('#dag path.edge', (ps) =>
        ps.map((p) => `${(p as SVGPathElement).dataset.from}>${(p as SVGPathElement).dataset.to}`).sort(),
      ),
    ).toEqual(['dev/dl>dev/relay', 'dev/dl>dev/up'])
    const fill = await page.$eval('#dag g.node[data-key="dev/up"] rect', (r) => getComputedStyle(r).fill)
    expect(fill).toBe('rgb(253, 222, 222)')

    // The first failed anchovy is selected: its run's timeline and the error text of the failed task.
    await page.click('#anchovies tbody tr[data-id="up"]')
    await page.waitForFunction(
      () => (document.querySelector('#detail') as HTMLElement | null)?.dataset.loaded === 'dev/up',
      { timeout: 30_000 },
    )
    const timeline = await page.$$eval('#timeline .row', (rs) =>
      rs.map((r) => `${(r as HTMLElement).dataset.task}:${(r as HTMLElement).dataset.status}`),
    )
    expect(timeline).toEqual(expect.arrayContaining(['STARTUP:OK', 'XOPEN:OK', 'TABLE:ERR', 'TABLE:OK', 'SHUTDOWN:OK']))
    expect(await page.$eval('#errors pre.error', (p) => p.textContent)).toContain(
      'table dl.sales: Error: upload of sales failed on purpose',
    )

    // The web anchovy's error names the URL, password masked.
    const html = await page.content()
    expect(html).not.toContain(SECRET)
    await page.click('#anchovies tbody tr[data-id="web"]')
    await page.waitForFunction(
      () => (document.querySelector('#detail') as HTMLElement | null)?.dataset.loaded === 'dev/web',
      { timeout: 30_000 },
    )
    expect(await page.$eval('#errors pre.error', (p) => p.textContent)).toContain('https://admin:***@api.example.com')
    expect(await page.content()).not.toContain(SECRET)

    await page.click('#anchovies tbody tr[data-id="up"]')
    await page.waitForFunction(
      () => (document.querySelector('#detail') as HTMLElement | null)?.dataset.loaded === 'dev/up',
      { timeout: 30_000 },
    )
    const shots = process.env.SCHOOL_SCREENSHOT_DIR
    if (shots) {
      mkdirSync(shots, { recursive: true })
      await page.screenshot({ path: path.join(shots, 'school.png'), fullPage: true })
    }
    expect(problems).toEqual([])
    await page.close()
  })

  it('asks for the token when the server needs one, then shows the school', async () => {
    const locked = await serve(school.env, ['--token', 'page-token-123456'])
    try {
      const page = await browser.newPage()
      await page.goto(locked.url, { waitUntil: 'load', timeout: 30_000 })
      await page.waitForSelector('#login:not([hidden])', { timeout: 30_000 })
      expect(await page.$$eval('#anchovies tbody tr', (trs) => trs.length)).toBe(0)
      await page.type('#token', 'page-token-123456')
      await page.click('#login button')
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 })
      expect(await page.$$eval('#anchovies tbody tr', (trs) => trs.length)).toBe(6)
      await page.close()
    } finally {
      await locked.stop()
    }
  })
})

export { REPO }
