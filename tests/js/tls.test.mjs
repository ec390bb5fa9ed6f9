// tus-js-client (Node's own https) uploads 64 MiB to tusk over HTTPS, trusting a certificate
// made for this run through NODE_EXTRA_CA_CERTS; the stored file must be byte-identical.
//
// The certificate is made with the `openssl` command. The binary is $TUSK_BIN, or
// ../../target/debug/tusk relative to this file. Everything is on 127.0.0.1; every wait is
// bounded.

import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import test from 'node:test'

import { CLIENT, MiB, sha256File, startTusk, within, writeRandomFile } from './helpers.mjs'

const FILE_SIZE = 64 * MiB
const UPLOAD_TIMEOUT_MS = 180_000

/** A self-signed certificate for 127.0.0.1 in `dir`: [certPath, keyPath]. */
function makeCertificate(dir) {
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' })
  return [cert, key]
}

test('tus-js-client uploads 64 MiB over HTTPS byte-exact', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tusk-tls-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const [cert, key] = makeCertificate(dir)
  const dataDir = path.join(dir, 'data')
  const { child: server, endpoint } = await startTusk([
    '--data-dir', dataDir, '--tls-cert-file', cert, '--tls-key-file', key,
  ])
  t.after(() => server.kill('SIGKILL'))
  assert.match(endpoint, /^https:\/\/127\.0\.0\.1:\d+\/files\/$/)

  const file = path.join(dir, 'upload.bin')
  const want = writeRandomFile(file, FILE_SIZE)
  const client = spawn(process.execPath, [CLIENT, '--endpoint', endpoint, '--file', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
  })
  let stderr = ''
  client.stderr.setEncoding('utf8').on('data', (d) => { stderr += d })
  let done = null
  readline.createInterface({ input: client.stdout }).on('line', (line) => {
    if (line.startsWith('done ')) done = line.slice(5).trim()
  })
  const [code] = await within('the upload', UPLOAD_TIMEOUT_MS, once(client, 'close'))
  assert.equal(code, 0, `client failed: ${stderr}`)
  assert.ok(done?.startsWith(endpoint), `upload URL ${done} is not under ${endpoint}`)
  const id = done.slice(endpoint.length)
  assert.equal(await sha256File(path.join(dataDir, id)), want, 'stored bytes differ')
})
