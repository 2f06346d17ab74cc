// The hub's one web page: every flist name with its tags, size, signers and last update, with a search box.
// Plain HTML, no script; everything interpolated is escaped.
import { escapeHtml } from './http.js'
import type { NameSummary } from './wire.js'

function size(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`
}

function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
}

export function renderIndex(options: { items: NameSummary[]; total: number; q: string; host: string; signer: string; offset: number; limit: number }): string {
  const { items, q, host } = options
  const rows = items
    .map((it) => {
      const v = it.newest
      const tags = it.tags
        .map((t) => {
          const href = `/api/v1/flists/${encodeURIComponent(it.ns)}/${encodeURIComponent(it.name)}/tags/${encodeURIComponent(t.tag)}/flist`
          return `<a href="${escapeHtml(href)}" title="${escapeHtml(`root ${t.root}\ndigest ${t.digest}`)}">${escapeHtml(t.tag)}</a>`
        })
        .join(' ')
      const signers = v.signers.map((s) => `<code>${escapeHtml(s)}</code>`).join('<br>') + (v.converted ? ' <small>(converted by the hub)</small>' : '')
      const ref = `hub://${host}/${it.ns}/${it.name}:${it.tags.some((t) => t.tag === 'latest') ? 'latest' : (it.tags[0]?.tag ?? 'latest')}`
      return `<tr>
  <td><code>${escapeHtml(it.ns)}</code>/<b>${escapeHtml(it.name)}</b><br><small><code>${escapeHtml(ref)}</code></small></td>
  <td>${tags}</td>
  <td>${size(v.bytes)} in ${v.files} files<br><small>${size(v.storedBytes)} stored, ${size(v.fileSize)} metadata</small></td>
  <td>${signers}</td>
  <td>${escapeHtml(when(it.updated))}</td>
</tr>`
    })
    .join('\n')
  const more = options.offset + items.length < options.total
    ? `<p><a href="/?q=${encodeURIComponent(q)}&amp;offset=${options.offset + options.limit}">next ${options.limit}</a></p>`
    : ''
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>zos hub</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .4em .6em; border-bottom: 1px solid #ddd; }
code { font-size: .85em; }
</style>
</head>
<body>
<h1>zos hub</h1>
<p>${options.total} flist${options.total === 1 ? '' : 's'}${q ? ` matching <b>${escapeHtml(q)}</b>` : ''}. Converted images are signed by <code>${escapeHtml(options.signer)}</code>.
Mount one with <code>zos flist mount hub://${escapeHtml(host)}/NS/NAME:TAG DIR</code>.</p>
<form method="get" action="/"><input name="q" value="${escapeHtml(q)}" placeholder="search names"> <button>search</button></form>
<table>
<thead><tr><th>name</th><th>tags</th><th>size</th><th>signers</th><th>updated</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
${more}
</body>
</html>
`
}
