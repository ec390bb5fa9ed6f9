// Helpers shared by the tus-js-client tests: the tusk binary and how to start it (local or over
// the test services), the client.mjs process driver, bounded waits, random files and hashes.
//
// The binary is $TUSK_BIN, or ../../target/debug/tusk relative to this file. Everything listens
// on and talks to 127.0.0.1 only. Every wait is a condition with a bounded timeout.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const HERE = path.dirname(fileURLToPath(import.meta.url))
export const TUSK_BIN = process.env.TUSK_BIN
  ? path.resolve(process.env.TUSK_BIN)
  : path.resolve(HERE, '../../target/debug/tusk')
export const CLIENT = path.join(HERE, 'client.mjs')
export const MiB = 1024 * 1024

const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 15_000

// ---------------------------------------------------------------------------------------------
// bounded waits

/** Resolves with `promise`, or rejects after `ms` naming `what`. */
export async function within(what, ms, promise) {
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

/**
 * Polls `check` (sync or async; a truthy result ends the wait) every `intervalMs` until
 * `timeoutMs`. Errors thrown by `check` count as "not yet"; `abort` (optional) is called first on
 * every round and ends the wait at once if it throws.
 */
export async function waitUntil(what, timeoutMs, check, { intervalMs = 50, abort = () => {} } = {}) {
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

const hasExited = (child) => child.exitCode !== null || child.signalCode !== null

/** Resolves with the exit code / signal of `child`, or rejects after `timeoutMs`. */
export async function waitForExit(child, timeoutMs, what) {
  if (!hasExited(child)) {
    await within(`${what} to exit`, timeoutMs, once(child, 'exit'))
  }
  return { code: child.exitCode, signal: child.signalCode }
}

/** SIGTERM, a bounded wait, then SIGKILL if `child` is still running. */
export async function stopProcess(child, what) {
  if (hasExited(child)) return
  child.kill('SIGTERM')
  try {
    await waitForExit(child, STOP_TIMEOUT_MS, `${what} after SIGTERM`)
  } catch {
    child.kill('SIGKILL')
    await waitForExit(child, 5_000, `${what} after SIGKILL`).catch(() => {})
  }
}

// ---------------------------------------------------------------------------------------------
// tusk

export function assertBinary() {
  assert.ok(
    fs.existsSync(TUSK_BIN),
    `tusk binary not found at ${TUSK_BIN}; build it with \`cargo build -p tusk-server --bin tusk\` or set TUSK_BIN`,
  )
}

/** The value of environment variable `name`; throws if the test services are not set up. */
export function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(
      `${name} is not set: start the test services with scripts/services.sh up and source .services/env`,
    )
  }
  return value
}

/**
 * The `tusk serve` flags for the distributed store over the test services (S3, Redis, etcd):
 * a fresh bucket and fresh Redis and etcd prefixes, so runs do not see each other's uploads.
 */
export async function distributedArgs() {
  const s3 = required('TUSK_TEST_S3_ENDPOINT').replace(/\/$/, '')
  const redis = required('TUSK_TEST_REDIS_URL')
  const etcd = required('TUSK_TEST_ETCD_ENDPOINTS')
  const unique = randomBytes(6).toString('hex')
  const bucket = `tusk-js-${unique}`
  const created = await fetch(`${s3}/${bucket}`, { method: 'PUT', signal: AbortSignal.timeout(30_000) })
  assert.equal(created.status, 200, 'create bucket')
  return [
    '--s3-bucket', bucket, '--s3-endpoint', s3, '--s3-region', 'us-east-1', '--s3-force-path-style',
    '--redis-url', redis, '--redis-prefix', `js-${unique}:`,
    '--etcd-endpoints', etcd, '--etcd-prefix', `js-${unique}/`,
    '--preferred-part-size', '5MiB',
  ]
}

/**
 * Starts `tusk serve --listen 127.0.0.1:0 ...args` and resolves with `{ child, endpoint }` once
 * it printed its address (its one line on stdout). `stderr` is where its log goes (`'inherit'`
 * or a file descriptor); `env` adds to the environment (the S3 credentials are always set).
 */
export async function startTusk(args, { stderr = 'inherit', env = {} } = {}) {
  const child = spawn(TUSK_BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    stdio: ['ignore', 'pipe', stderr],
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_EC2_METADATA_DISABLED: 'true',
      ...env,
    },
  })
  const address = (async () => {
    for await (const line of readline.createInterface({ input: child.stdout })) {
      const match = /^tusk listening on (\S+)$/.exec(line.trim())
      if (match) return match[1]
    }
    throw new Error('tusk exited before it printed its address')
  })()
  try {
    return { child, endpoint: await within('tusk to listen', START_TIMEOUT_MS, address) }
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// client.mjs

/**
 * Runs client.mjs and parses its stdout lines into events. `waitFor(pred, ms)` resolves with
 * the first line (split into words) matching `pred`, and rejects on timeout or if the process
 * exits first.
 */
export function startClient(args, { env = {} } = {}) {
  const child = spawn(process.execPath, [CLIENT, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
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

// ---------------------------------------------------------------------------------------------
// files and hashes

/** Writes `size` random bytes to `file` in 1 MiB pieces and returns their sha256. */
export function writeRandomFile(file, size) {
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

export async function sha256File(file) {
  const hash = createHash('sha256')
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk)
  return hash.digest('hex')
}

/** GETs `url` (status must be 200) and hashes the body as it streams: `{ size, sha256 }`. */
export async function sha256Download(url, timeoutMs = 60_000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  assert.equal(res.status, 200, `GET ${url}`)
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of res.body) {
    hash.update(chunk)
    size += chunk.length
  }
  return { size, sha256: hash.digest('hex'), contentLength: res.headers.get('content-length') }
}
