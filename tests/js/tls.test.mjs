// tus-js-client (Node's own https) uploads 64 MiB to tusk over HTTPS, trusting a certificate
// made for this run through NODE_EXTRA_CA_CERTS; the stored file must be byte-identical.
//
// The certificate is made with the `openssl` command. The binary is $TUSK_BIN, or
// ../../target/debug/tusk relative to this file. Everything is on 127.0.0.1; every wait is
// bounded.

import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import test from 'node:test'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const TUSK_BIN = process.env.TUSK_BIN
  ? path.resolve(process.env.TUSK_BIN)
  : path.resolve(HERE, '../../target/debug/tusk')
const CLIENT = path.join(HERE, 'client.mjs')
const MiB = 1024 * 1024
const FILE_SIZE = 64 * MiB
const START_TIMEOUT_MS = 30_000
const UPLOAD_TIMEOUT_MS = 180_000

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
async function within(what, ms, promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

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

/** Writes `size` random bytes to `file` in 1 MiB pieces and returns their sha256. */
function writeRandomFile(file, size) {
  const hash = createHash('sha256')
  const fd = fs.openSync(file, 'w')
  try {
    for (let written = 0; written < size; ) {
      const buf = randomBytes(Math.min(MiB, size - written))
      fs.writeSync(fd, buf)
      hash.update(buf)
      written += buf.length
    }
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

async function sha256File(file) {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk)
  return hash.digest('hex')
}

test('tus-js-client uploads 64 MiB over HTTPS byte-exact', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tusk-tls-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const [cert, key] = makeCertificate(dir)
  const dataDir = path.join(dir, 'data')
  const server = spawn(TUSK_BIN, [
    'serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
    '--tls-cert-file', cert, '--tls-key-file', key,
  ], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.after(() => server.kill('SIGKILL'))
  const [first] = await within('tusk to start', START_TIMEOUT_MS,
    once(readline.createInterface({ input: server.stdout }), 'line'))
  const endpoint = first.replace(/^tusk listening on /, '')
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
