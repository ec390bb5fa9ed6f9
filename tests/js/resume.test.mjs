// Resume test with the real tus-js-client against the real tusk binary.
//
// A first client process uploads a 50 MiB random file in 5 MiB chunks and is SIGKILLed
// mid-upload; a second, fresh client process resumes from the upload URL. The stored file must
// then be byte-identical to the source, and the second client must not have re-sent the bytes
// the server already had.
//
// The binary is $TUSK_BIN, or ../../target/debug/tusk relative to this file. Everything
// listens on and talks to 127.0.0.1 only. Every wait is a condition with a bounded timeout.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import test from 'node:test'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const TUSK_BIN = process.env.TUSK_BIN
  ? path.resolve(process.env.TUSK_BIN)
  : path.resolve(HERE, '../../target/debug/tusk')
const CLIENT = path.join(HERE, 'client.mjs')

const MiB = 1024 * 1024
const FILE_SIZE = 50 * MiB
const CHUNK_SIZE = 5 * MiB
const KILL_AT = 15 * MiB
// Delay before each PATCH of the first client: the kill lands while it waits, long before the
// remaining chunks could finish.
const THROTTLE_MS = 400

// ---------------------------------------------------------------------------------------------
// helpers

/**
 * Polls `check` (sync or async; a truthy result ends the wait) every `intervalMs` until
 * `timeoutMs`. Errors thrown by `check` count as "not yet"; `abort` (optional) is called first on
 * every round and ends the wait at once if it throws.
 */
async function waitUntil(what, timeoutMs, check, { intervalMs = 50, abort = () => {} } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    abort()
    try {
      const result = await check()
      if (result) return result
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      const why = lastError ? ` (last error: ${lastError.message})` : ''
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`)
    }
    await sleep(intervalMs)
  }
}

/** A free TCP port on 127.0.0.1 (asks the kernel for one, then releases it). */
async function freePort() {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address()
  srv.close()
  await once(srv, 'close')
  return port
}

/** Resolves with the exit code / signal of `child`, or rejects after `timeoutMs`. */
async function waitForExit(child, timeoutMs, what) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return { code: child.exitCode, signal: child.signalCode }
  }
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }))
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} to exit`)),
      timeoutMs,
    )
  })
  try {
    return await Promise.race([exited, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs client.mjs and parses its stdout lines into events. `waitFor(pred, ms)` resolves with
 * the first line (split into words) matching `pred`, and rejects on timeout or if the process
 * exits first.
 */
function startClient(args) {
  const child = spawn(process.execPath, [CLIENT, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines = []
  const waiters = new Set()
  let stderr = ''
  let exited = false
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (d) => {
    stderr += d
  })
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const words = line.trim().split(/\s+/)
    lines.push(words)
    for (const w of waiters) w.check(words)
  })
  // 'close' fires after stdout is fully read, so no line is missed by a waiter.
  child.on('close', () => {
    exited = true
    for (const w of waiters) w.onExit()
  })

  function waitFor(what, pred, timeoutMs) {
    const found = lines.find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const w = {
        check(words) {
          if (pred(words)) done(null, words)
        },
        onExit() {
          done(
            new Error(
              `client exited (code ${child.exitCode}, signal ${child.signalCode}) before ${what}; stderr:\n${stderr}`,
            ),
          )
        },
      }
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr:\n${stderr}`)),
        timeoutMs,
      )
      function done(err, value) {
        clearTimeout(timer)
        waiters.delete(w)
        if (err) reject(err)
        else resolve(value)
      }
      waiters.add(w)
      if (exited) w.onExit()
    })
  }

  return {
    child,
    lines,
    waitFor,
    stderr: () => stderr,
    events: (kind) => lines.filter((w) => w[0] === kind),
  }
}

async function tusHead(url) {
  const res = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } })
  return {
    status: res.status,
    offset: res.headers.get('upload-offset'),
    length: res.headers.get('upload-length'),
    tusResumable: res.headers.get('tus-resumable'),
    cacheControl: res.headers.get('cache-control'),
  }
}

/** HEAD that tolerates a transiently locked upload (423) right after a client was killed. */
async function tusHeadSettled(url, timeoutMs) {
  return waitUntil(`HEAD ${url} to answer 200`, timeoutMs, async () => {
    const h = await tusHead(url)
    if (h.status === 423) return null
    assert.equal(h.status, 200, `HEAD ${url}: expected 200, got ${h.status}`)
    return h
  })
}

async function sha256File(file) {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk)
  return hash.digest('hex')
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

// ---------------------------------------------------------------------------------------------

test('tus-js-client resumes a killed 50 MiB upload without re-sending', { timeout: 240_000 }, async (t) => {
  assert.ok(
    fs.existsSync(TUSK_BIN),
    `tusk binary not found at ${TUSK_BIN}; build it with \`cargo build -p tusk-server --bin tusk\` or set TUSK_BIN`,
  )

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tusk-js-'))
  const dataDir = path.join(work, 'data')
  fs.mkdirSync(dataDir)
  const serverLog = path.join(work, 'server.log')
  const children = []
  let server = null

  t.after(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    }
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM')
      try {
        await waitForExit(server, 15_000, 'tusk after SIGTERM')
      } catch {
        server.kill('SIGKILL')
        await waitForExit(server, 5_000, 'tusk after SIGKILL').catch(() => {})
      }
    }
    fs.rmSync(work, { recursive: true, force: true })
  })

  try {
    // --- server ------------------------------------------------------------------------------
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    const endpoint = `${base}/files/`
    const logFd = fs.openSync(serverLog, 'w')
    server = spawn(
      TUSK_BIN,
      ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--base-path', '/files/'],
      { stdio: ['ignore', logFd, logFd] },
    )
    fs.closeSync(logFd)

    await waitUntil(
      'tusk to answer OPTIONS /files/ with 204',
      30_000,
      async () => (await fetch(endpoint, { method: 'OPTIONS' })).status === 204,
      {
        abort: () => {
          if (server.exitCode !== null || server.signalCode !== null) {
            throw new Error(`tusk exited early (code ${server.exitCode}, signal ${server.signalCode})`)
          }
        },
      },
    )

    // --- source file ---------------------------------------------------------------------------
    const src = path.join(work, 'source.bin')
    const srcSha = writeRandomFile(src, FILE_SIZE)
    const urlOut = path.join(work, 'upload-url.txt')

    // --- first client: killed mid-upload ------------------------------------------------------
    const first = startClient([
      '--endpoint', endpoint,
      '--file', src,
      '--url-out', urlOut,
      '--chunk-size', String(CHUNK_SIZE),
      '--throttle-ms', String(THROTTLE_MS),
    ])
    children.push(first.child)

    const reached = await first.waitFor(
      `progress >= ${KILL_AT}`,
      (w) => w[0] === 'progress' && Number(w[1]) >= KILL_AT,
      120_000,
    )
    first.child.kill('SIGKILL')
    const firstExit = await waitForExit(first.child, 10_000, 'first client after SIGKILL')
    assert.equal(firstExit.signal, 'SIGKILL', `first client was not killed: ${JSON.stringify(firstExit)}`)
    assert.ok(Number(reached[1]) < FILE_SIZE, `first client reached ${reached[1]} before the kill`)
    assert.equal(first.events('done').length, 0, 'first client finished before it was killed')

    const created = first.events('created')
    assert.equal(created.length, 1, 'first client must have created exactly one upload')
    assert.ok(fs.existsSync(urlOut), '--url-out file was not written')
    const uploadUrl = fs.readFileSync(urlOut, 'utf8').trim()
    assert.equal(uploadUrl, created[0][1], 'url-out file and Location disagree')
    const idMatch = /^http:\/\/127\.0\.0\.1:(\d+)\/files\/([0-9a-f]{32})$/.exec(uploadUrl)
    assert.ok(idMatch, `Location is not an absolute http://127.0.0.1:PORT/files/<32-hex id>: ${uploadUrl}`)
    assert.equal(Number(idMatch[1]), port)
    const id = idMatch[2]

    const afterKill = await tusHeadSettled(uploadUrl, 10_000)
    assert.equal(afterKill.tusResumable, '1.0.0', 'HEAD response lacks Tus-Resumable: 1.0.0')
    assert.match(afterKill.cacheControl ?? '', /no-store/, 'HEAD response lacks Cache-Control: no-store')
    assert.equal(afterKill.length, String(FILE_SIZE), 'Upload-Length after the kill')
    const killedOffset = Number(afterKill.offset)
    assert.ok(
      Number.isSafeInteger(killedOffset) && killedOffset > 0 && killedOffset < FILE_SIZE,
      `Upload-Offset after the kill must be strictly between 0 and ${FILE_SIZE}, got ${afterKill.offset}`,
    )
    t.diagnostic(`killed at progress ${reached[1]}; server offset after kill ${killedOffset}`)

    // --- second client: a new process resumes ------------------------------------------------
    const second = startClient([
      '--endpoint', endpoint,
      '--file', src,
      '--upload-url', uploadUrl,
      '--chunk-size', String(CHUNK_SIZE),
    ])
    children.push(second.child)
    const doneLine = await second.waitFor('done', (w) => w[0] === 'done', 120_000)
    const secondExit = await waitForExit(second.child, 10_000, 'second client')
    assert.equal(secondExit.code, 0, `second client failed: ${JSON.stringify(secondExit)}\n${second.stderr()}`)
    assert.equal(doneLine[1], uploadUrl, 'second client finished a different upload')

    // It resumed rather than starting over: no new upload, its HEAD saw at least the offset we
    // saw, its first progress report starts there, and it sent exactly the missing bytes.
    assert.equal(second.events('created').length, 0, 'second client created a new upload instead of resuming')
    const resumeOffsets = second.events('resume-offset')
    assert.ok(resumeOffsets.length >= 1, 'second client did not HEAD the upload')
    const resumedAt = Number(resumeOffsets[0][1])
    assert.ok(resumedAt >= killedOffset, `second client resumed at ${resumedAt} < ${killedOffset}`)
    const firstProgress = second.events('progress')[0]
    assert.ok(firstProgress, 'second client reported no progress')
    assert.ok(
      Number(firstProgress[1]) >= killedOffset,
      `second client's first progress ${firstProgress[1]} is below the offset after the kill ${killedOffset}: it re-sent from zero`,
    )
    const sentBySecond = second.events('chunk').reduce((sum, w) => sum + Number(w[1]), 0)
    assert.equal(sentBySecond, FILE_SIZE - resumedAt, 'bytes acknowledged to the second client')
    t.diagnostic(`second client resumed at ${resumedAt} and sent ${sentBySecond} bytes`)

    // --- final state --------------------------------------------------------------------------
    const final = await tusHead(uploadUrl)
    assert.equal(final.status, 200)
    assert.equal(final.tusResumable, '1.0.0')
    assert.equal(final.offset, String(FILE_SIZE), 'final Upload-Offset')
    assert.equal(final.length, String(FILE_SIZE), 'final Upload-Length')

    const stored = path.join(dataDir, id)
    assert.equal(fs.statSync(stored).size, FILE_SIZE, 'size of the stored file')
    assert.equal(await sha256File(stored), srcSha, 'sha256 of the stored file differs from the source')

    const info = JSON.parse(fs.readFileSync(path.join(dataDir, `${id}.info`), 'utf8'))
    assert.equal(info.id, id, '.info id')
    assert.equal(Number(info.offset), FILE_SIZE, '.info offset')
    assert.equal(Number(info.length), FILE_SIZE, '.info length')
  } catch (err) {
    if (fs.existsSync(serverLog)) {
      const log = fs.readFileSync(serverLog, 'utf8')
      t.diagnostic(`tusk log (last 4000 chars):\n${log.slice(-4000)}`)
    }
    throw err
  }
})
