// The school page: reads the same JSON API the CLI's --json prints. No framework, no build step; every value from
// the datastore is put into the page with textContent or attributes, never as HTML.
;(() => {
  const SVG = 'http://www.w3.org/2000/svg'
  const $ = (id) => document.getElementById(id)
  let token = sessionStorage.getItem('anchovy-school-token') || ''
  let selected = null
  let selectedSession = null

  async function api(path) {
    const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
    if (res.status === 401) {
      $('login').hidden = false
      throw new Error('this school needs a token')
    }
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
    return res.json()
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v))
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)))
    return node
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag)
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v))
    if (text != null) node.textContent = String(text)
    return node
  }

  function age(seconds) {
    if (seconds == null) return '-'
    if (seconds < 120) return `${seconds}s`
    if (seconds < 7200) return `${Math.round(seconds / 60)}m`
    if (seconds < 172800) return `${Math.round(seconds / 3600)}h`
    return `${Math.round(seconds / 86400)}d`
  }

  function drawGraph(graph) {
    const box = $('graph')
    box.replaceChildren()
    const W = 190,
      H = 34,
      GX = 70,
      GY = 18
    const columns = new Map()
    for (const n of graph.nodes) {
      if (!columns.has(n.level)) columns.set(n.level, [])
      columns.get(n.level).push(n)
    }
    const pos = new Map()
    let rows = 1
    for (const [level, nodes] of columns) {
      nodes.forEach((n, i) => pos.set(n.key, { x: 10 + level * (W + GX), y: 10 + i * (H + GY) }))
      rows = Math.max(rows, nodes.length)
    }
    const width = 20 + Math.max(1, columns.size) * (W + GX) - GX
    const height = 20 + rows * (H + GY) - GY
    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', id: 'dag' })
    const defs = svg('defs')
    const marker = svg('marker', {
      id: 'arrow',
      viewBox: '0 0 10 10',
      refX: 10,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: 'auto-start-reverse',
    })
    marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#888' }))
    defs.append(marker)
    root.append(defs)
    for (const e of graph.edges) {
      const a = pos.get(e.from),
        b = pos.get(e.to)
      if (!a || !b) continue
      const x1 = a.x + W,
        y1 = a.y + H / 2,
        x2 = b.x,
        y2 = b.y + H / 2
      const path = svg('path', {
        class: 'edge',
        d: `M ${x1} ${y1} C ${x1 + GX / 2} ${y1}, ${x2 - GX / 2} ${y2}, ${x2} ${y2}`,
      })
      path.dataset.from = e.from
      path.dataset.to = e.to
      root.append(path)
    }
    const multiUser = new Set(graph.nodes.map((n) => n.user)).size > 1
    for (const n of graph.nodes) {
      const p = pos.get(n.key)
      const g = svg('g', { class: `node state-${n.state}`, transform: `translate(${p.x},${p.y})` })
      g.dataset.key = n.key
      g.dataset.state = n.state
      g.append(svg('rect', { width: W, height: H }))
      const name = multiUser ? n.key : n.id
      g.append(svg('text', { x: 8, y: 14 }, name.length > 26 ? `${name.slice(0, 25)}…` : name))
      g.append(
        svg(
          'text',
          { x: 8, y: 28, 'font-size': 10, fill: '#555' },
          `${n.state}${n.stale && n.state !== 'stale' && n.state !== 'never' ? ' · stale' : ''}${n.operator ? ` · ${n.operator}` : ''}`,
        ),
      )
      g.append(svg('title', {}, `${n.key}: ${n.state}`))
      g.addEventListener('click', () => select(n.user, n.id))
      root.append(g)
    }
    box.append(root)
  }

  function freshness(a) {
    if (a.age_s == null) return ''
    return a.stale ? 'old' : a.age_s > 3600 ? 'aging' : 'fresh'
  }

  function drawTable(anchovies) {
    const body = $('anchovies').tBodies[0]
    body.replaceChildren()
    for (const a of anchovies) {
      const run = a.last_run
      const tr = el(
        'tr',
        { 'data-id': a.id, 'data-user': a.user, 'data-state': a.state },
        el('td', {}, a.user),
        el('td', {}, a.id),
        el('td', {}, a.operator || '-'),
        el('td', {}, a.upstream.join(', ') || '-'),
        el('td', { class: 'state' }, el('span', { class: `badge ${a.state}` }, a.state)),
        el('td', {}, run?.ended_at ? run.ended_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-'),
        el('td', { class: freshness(a) }, age(a.age_s)),
        el('td', {}, run && run.exit_code != null ? run.exit_code : '-'),
        el('td', {}, run ? run.rows : '-'),
        el('td', {}, a.lock ? `${a.lock.host} (pid ${a.lock.pid})` : '-'),
        el('td', { class: 'error' }, run?.error || ''),
      )
      if (selected && selected.user === a.user && selected.id === a.id) tr.classList.add('selected')
      tr.addEventListener('click', () => select(a.user, a.id))
      body.append(tr)
    }
    const counts = new Map()
    for (const a of anchovies) counts.set(a.state, (counts.get(a.state) || 0) + 1)
    $('counts').textContent = `${anchovies.length} anchovies · ${[...counts].map(([s, n]) => `${n} ${s}`).join(' · ')}`
  }

  const seg = (v) => encodeURIComponent(v)

  let generation = 0

  async function select(user, id, session) {
    selected = { user, id }
    const mine = ++generation
    delete $('detail').dataset.loaded
    for (const tr of $('anchovies').tBodies[0].rows)
      tr.classList.toggle('selected', tr.dataset.user === user && tr.dataset.id === id)
    const { runs } = await api(`/api/anchovies/${seg(user)}/${seg(id)}/runs?limit=20`)
    if (mine !== generation) return
    $('detail').hidden = false
    $('detail-name').textContent = `${user}/${id}`
    const pick = $('runs')
    pick.replaceChildren(...runs.map((r) => el('option', { value: r.session_id }, `${r.session_id} · ${r.status}`)))
    if (!runs.length) {
      $('run-meta').textContent = 'no finished run yet'
      $('timeline').replaceChildren()
      $('errors').replaceChildren()
      $('detail').dataset.loaded = `${user}/${id}`
      return
    }
    selectedSession = session && runs.some((r) => r.session_id === session) ? session : runs[0].session_id
    pick.value = selectedSession
    await drawRun(user, id, selectedSession, mine)
  }

  async function drawRun(user, id, session, mine = ++generation) {
    const [{ tasks }, run] = await Promise.all([
      api(`/api/anchovies/${seg(user)}/${seg(id)}/runs/${seg(session)}/tasks`),
      api(`/api/anchovies/${seg(user)}/${seg(id)}/runs/${seg(session)}`),
    ])
    // A newer selection was made while these answers travelled: drawing them would show the wrong anchovy.
    if (mine !== generation) return
    const starts = tasks.map((t) => Date.parse(t.started_at)).filter(Number.isFinite)
    const t0 = starts.length ? Math.min(...starts) : Date.parse(run.startup_at)
    const t1 = Math.max(Date.parse(run.shutdown_at), ...tasks.map((t) => Date.parse(t.completed_at)))
    const span = Math.max(1, t1 - t0)
    $('run-meta').textContent =
      `${run.status} · exit ${run.exit_code ?? '-'} · ${((t1 - t0) / 1000).toFixed(2)}s · started ${run.startup_at}`
    const rows = tasks.map((t) => {
      const start = Date.parse(t.started_at) - t0
      const bar = el('div', { class: `bar${t.status === 'ERR' ? ' err' : ''}`, title: `${t.duration} ms` })
      bar.style.left = `${(100 * start) / span}%`
      bar.style.width = `${Math.max(0.3, (100 * t.duration) / span)}%`
      const rowsMoved = t.data && typeof t.data.rows === 'number' ? ` · ${t.data.rows} rows` : ''
      return el(
        'div',
        { class: 'row', 'data-task': t.task_type, 'data-status': t.status },
        el('span', {}, t.tbl ? `${t.task_type} ${t.tbl}` : t.task_type),
        el('div', { class: 'track' }, bar),
        el('span', {}, `${t.duration} ms${rowsMoved}`),
      )
    })
    $('timeline').replaceChildren(...rows)
    const errors = tasks.filter((t) => t.status === 'ERR' && t.data)
    $('errors').replaceChildren(
      ...errors.map((t) =>
        el(
          'pre',
          { class: 'error' },
          `${t.tbl ? `table ${t.tbl}` : t.task_type}: ${t.data.err_type || 'Error'}: ${t.data.err_msg || ''}${t.data.err_code ? ` [${t.data.err_code}]` : ''}`,
        ),
      ),
    )
    $('detail').dataset.loaded = `${user}/${id}`
  }

  async function refresh() {
    try {
      const [{ anchovies }, graph] = await Promise.all([api('/api/anchovies'), api('/api/graph')])
      $('problem').hidden = true
      $('login').hidden = true
      drawGraph(graph)
      drawTable(anchovies)
      $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`
      if (!selected && anchovies.length) {
        const first = anchovies.find((a) => a.state === 'failed') || anchovies[0]
        await select(first.user, first.id)
      }
      document.body.dataset.ready = 'true'
    } catch (err) {
      $('problem').hidden = false
      $('problem').textContent = err.message
    }
  }

  $('runs').addEventListener(
    'change',
    () =>
      selected &&
      drawRun(selected.user, selected.id, $('runs').value).catch((err) => ($('problem').textContent = err.message)),
  )
  $('login').addEventListener('submit', (ev) => {
    ev.preventDefault()
    token = $('token').value
    sessionStorage.setItem('anchovy-school-token', token)
    refresh()
  })
  refresh()
  setInterval(refresh, 15000)
})()
