// tus-js-client with `parallelUploads: 4` against three distributed tusk nodes behind a
// round-robin proxy: the partial uploads, their PATCHes and the final concatenation land on
// different nodes, and the assembled object must be byte-identical to the source.
//
// Needs the test services (scripts/services.sh up; scripts/test.sh starts them):
// TUSK_TEST_REDIS_URL, TUSK_TEST_ETCD_ENDPOINTS and TUSK_TEST_S3_ENDPOINT. Everything listens on
// and talks to 127.0.0.1 only; every wait is bounded.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import test from 'node:test'
import { Upload } from 'tus-js-client'

import { MiB, distributedArgs, startTusk } from './helpers.mjs'

const PATIENCE_MS = 120_000

/** Start one `tusk serve` node; resolves with its collection URL once it listens. */
async function startNode(args) {
  const { child, endpoint } = await startTusk(args, { env: { RUST_LOG: 'warn' } })
  return { child, url: new URL(endpoint) }
}

/** A proxy on 127.0.0.1 that sends each request to the next node in turn. */
async function roundRobin(nodes) {
  const counts = nodes.map(() => 0)
  let next = 0
  const server = http.createServer((req, res) => {
    const i = next++ % nodes.length
    counts[i] += 1
    const target = nodes[i].url
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers, // Host stays the proxy's: Location URLs point back here
      },
      (up) => {
        res.writeHead(up.statusCode, up.headers)
        up.pipe(res)
      },
    )
    upstream.on('error', (err) => {
      res.writeHead(502)
      res.end(String(err))
    })
    req.pipe(upstream)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, counts, url: `http://127.0.0.1:${server.address().port}/files/` }
}

test('parallelUploads: 4 over three nodes assembles the exact file', { timeout: 4 * PATIENCE_MS }, async () => {
  const args = await distributedArgs()
  const nodes = []
  let proxy
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startNode(args))
    proxy = await roundRobin(nodes)

    const data = randomBytes(24 * MiB)
    const source = createHash('sha256').update(data).digest('hex')
    const finalUrl = await new Promise((resolve, reject) => {
      const upload = new Upload(data, {
        endpoint: proxy.url,
        parallelUploads: 4,
        chunkSize: 4 * MiB,
        retryDelays: [0, 200, 500, 1000],
        metadata: { filename: 'parallel.bin', filetype: 'application/octet-stream' },
        onError: reject,
        onSuccess: () => resolve(upload.url),
      })
      upload.start()
    })
    assert.ok(finalUrl, 'the final upload has a URL')
    assert.ok(
      proxy.counts.every((n) => n > 0),
      `every node served requests: ${proxy.counts.join(', ')}`,
    )

    const head = await fetch(finalUrl, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('upload-offset'), String(data.length))
    assert.match(head.headers.get('upload-concat') ?? '', /^final;/)

    const got = await fetch(finalUrl)
    assert.equal(got.status, 200)
    const body = Buffer.from(await got.arrayBuffer())
    assert.equal(body.length, data.length)
    assert.equal(createHash('sha256').update(body).digest('hex'), source, 'sha256 of the assembled file')
  } finally {
    if (proxy) proxy.server.close()
    for (const node of nodes) node.child.kill('SIGTERM')
    await Promise.all(
      nodes.map((n) => (n.child.exitCode === null && n.child.signalCode === null ? once(n.child, 'exit') : null)),
    )
  }
})
