// The kill-and-resume scenario with the real tus-js-client against the real tusk binary, shared
// by resume.test.mjs (tus 1.0) and ietf.test.mjs (the IETF resumable-upload draft).
//
// A first client process (client.mjs) uploads a random file in chunks and is SIGKILLed once it
// reported `killAt` bytes of progress; a second, fresh client process resumes from the upload
// URL. The upload must then be byte-identical to the source (downloaded with GET; in local mode
// also the stored file and its .info), and the second client must not have re-sent the bytes
// the server already had.
//
// Parameters: protocol ('tus' or 'ietf-draft-05', passed to tus-js-client), fileSize,
// chunkSize, killAt, mode ('local': `tusk serve --data-dir`; 'distributed': one node over the
// test services' S3, Redis and etcd, see helpers.mjs distributedArgs). Server-side checks use a
// tus HEAD (Tus-Resumable: 1.0.0, answered 200 on any upload); with an IETF protocol the
// scenario also checks the draft's HEAD (204, Upload-Complete, no Tus-Resumable) after the kill
// and at the end, and that every response the clients got was a draft response.
//
// Everything listens on and talks to 127.0.0.1 only. Every wait is a condition with a bounded
// timeout.

import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {
  assertBinary,
  distributedArgs,
  sha256Download,
  sha256File,
  startClient,
  startTusk,
  stopProcess,
  waitForExit,
  waitUntil,
  writeRandomFile,
} from './helpers.mjs'

const PROTOCOLS = {
  tus: { ietf: false, headers: { 'Tus-Resumable': '1.0.0' } },
  // tus-js-client's ietf-draft-05 sends interop version 6.
  'ietf-draft-05': { ietf: true, headers: { 'Upload-Draft-Interop-Version': '6' } },
}
const MODES = ['local', 'distributed']
// Delay before each PATCH of the first client: the kill lands while it waits, long before the
// remaining chunks could finish.
const THROTTLE_MS = 400
const CLIENT_TIMEOUT_MS = 120_000
const HEAD_TIMEOUT_MS = 10_000

/** A HEAD of `url` with `headers`, reduced to what the scenario checks. */
async function head(url, headers) {
  const res = await fetch(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(HEAD_TIMEOUT_MS) })
  const get = (name) => res.headers.get(name)
  return {
    status: res.status,
    offset: get('upload-offset'),
    length: get('upload-length'),
    tusResumable: get('tus-resumable'),
    cacheControl: get('cache-control'),
    complete: get('upload-complete'),
    limit: get('upload-limit'),
  }
}

/**
 * HEAD that tolerates a transiently locked upload (423) right after a client was killed, and
 * requires `status` otherwise.
 */
async function headSettled(url, headers, status) {
  return waitUntil(`HEAD ${url} to answer ${status}`, HEAD_TIMEOUT_MS, async () => {
    const h = await head(url, headers)
    if (h.status === 423) return null
    assert.equal(h.status, status, `HEAD ${url} with ${JSON.stringify(headers)}: expected ${status}, got ${h.status}`)
    return h
  })
}

const tusHead = (url) => headSettled(url, PROTOCOLS.tus.headers, 200)

/**
 * The draft's HEAD (interop version 6) of an upload the tus HEAD saw as `tus`: 204, the same
 * offset and length, `Upload-Complete: ?1` exactly when `complete`, Upload-Limit and
 * Cache-Control: no-store, and no Tus-Resumable.
 */
async function checkIetfHead(url, tus, complete, when) {
  const h = await headSettled(url, PROTOCOLS['ietf-draft-05'].headers, 204)
  assert.equal(h.complete, complete ? '?1' : '?0', `IETF HEAD ${when}: Upload-Complete`)
  assert.equal(h.tusResumable, null, `IETF HEAD ${when}: a draft response has no Tus-Resumable`)
  assert.equal(h.offset, tus.offset, `IETF HEAD ${when}: Upload-Offset differs from the tus HEAD's`)
  assert.equal(h.length, tus.length, `IETF HEAD ${when}: Upload-Length differs from the tus HEAD's`)
  assert.match(h.cacheControl ?? '', /no-store/, `IETF HEAD ${when}: Cache-Control: no-store`)
  assert.ok(h.limit, `IETF HEAD ${when}: Upload-Limit is missing`)
}

/**
 * Every response a client got spoke the scenario's protocol: tus responses carry
 * Tus-Resumable: 1.0.0; draft responses carry Upload-Complete and no Tus-Resumable.
 */
function checkResponses(client, protocol, which) {
  const responses = client.events('response')
  assert.ok(responses.length > 0, `${which} client reported no responses`)
  for (const [, method, status, tusResumable, complete] of responses) {
    const what = `${which} client: ${method} answered ${status}`
    if (PROTOCOLS[protocol].ietf) {
      assert.equal(tusResumable, '-', `${what} with Tus-Resumable in the IETF draft`)
      assert.match(complete, /^\?[01]$/, `${what} without Upload-Complete in the IETF draft`)
    } else {
      assert.equal(tusResumable, '1.0.0', `${what} without Tus-Resumable: 1.0.0`)
    }
  }
}

/**
 * Runs the scenario inside test context `t`; see the top of this file.
 * @param {import('node:test').TestContext} t
 * @param {{ protocol: 'tus' | 'ietf-draft-05', fileSize: number, chunkSize: number,
 *           killAt: number, mode: 'local' | 'distributed' }} options
 */
export async function runResumeScenario(t, { protocol, fileSize, chunkSize, killAt, mode }) {
  assert.ok(PROTOCOLS[protocol], `unknown protocol ${protocol}`)
  assert.ok(MODES.includes(mode), `unknown mode ${mode}`)
  assert.ok(0 < killAt && killAt < fileSize, 'killAt must be inside the file')
  assertBinary()
  const storeArgs = mode === 'local' ? null : await distributedArgs()

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
    if (server) await stopProcess(server, 'tusk')
    fs.rmSync(work, { recursive: true, force: true })
  })

  try {
    // --- server ------------------------------------------------------------------------------
    const logFd = fs.openSync(serverLog, 'w')
    let endpoint
    try {
      ;({ child: server, endpoint } = await startTusk(
        [...(storeArgs ?? ['--data-dir', dataDir]), '--base-path', '/files/'],
        { stderr: logFd },
      ))
    } finally {
      fs.closeSync(logFd)
    }
    const port = Number(new URL(endpoint).port)
    assert.equal(endpoint, `http://127.0.0.1:${port}/files/`, 'tusk listens on 127.0.0.1 at /files/')

    await waitUntil(
      'tusk to answer OPTIONS /files/ with 204',
      30_000,
      async () =>
        (await fetch(endpoint, { method: 'OPTIONS', signal: AbortSignal.timeout(HEAD_TIMEOUT_MS) })).status === 204,
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
    const srcSha = writeRandomFile(src, fileSize)
    const urlOut = path.join(work, 'upload-url.txt')
    const clientArgs = ['--endpoint', endpoint, '--file', src, '--chunk-size', String(chunkSize), '--protocol', protocol]

    // --- first client: killed mid-upload ------------------------------------------------------
    const first = startClient([...clientArgs, '--url-out', urlOut, '--throttle-ms', String(THROTTLE_MS)])
    children.push(first.child)

    const reached = await first.waitFor(
      `progress >= ${killAt}`,
      (w) => w[0] === 'progress' && Number(w[1]) >= killAt,
      CLIENT_TIMEOUT_MS,
    )
    first.child.kill('SIGKILL')
    const firstExit = await waitForExit(first.child, 10_000, 'first client after SIGKILL')
    assert.equal(firstExit.signal, 'SIGKILL', `first client was not killed: ${JSON.stringify(firstExit)}`)
    assert.ok(Number(reached[1]) < fileSize, `first client reached ${reached[1]} before the kill`)
    assert.equal(first.events('done').length, 0, 'first client finished before it was killed')
    checkResponses(first, protocol, 'first')

    const created = first.events('created')
    assert.equal(created.length, 1, 'first client must have created exactly one upload')
    assert.ok(fs.existsSync(urlOut), '--url-out file was not written')
    const uploadUrl = fs.readFileSync(urlOut, 'utf8').trim()
    assert.equal(uploadUrl, created[0][1], 'url-out file and Location disagree')
    const idMatch = /^http:\/\/127\.0\.0\.1:(\d+)\/files\/([0-9a-f]{32})$/.exec(uploadUrl)
    assert.ok(idMatch, `Location is not an absolute http://127.0.0.1:PORT/files/<32-hex id>: ${uploadUrl}`)
    assert.equal(Number(idMatch[1]), port)
    const id = idMatch[2]

    const afterKill = await tusHead(uploadUrl)
    assert.equal(afterKill.tusResumable, '1.0.0', 'HEAD response lacks Tus-Resumable: 1.0.0')
    assert.match(afterKill.cacheControl ?? '', /no-store/, 'HEAD response lacks Cache-Control: no-store')
    assert.equal(afterKill.length, String(fileSize), 'Upload-Length after the kill')
    const killedOffset = Number(afterKill.offset)
    assert.ok(
      Number.isSafeInteger(killedOffset) && killedOffset > 0 && killedOffset < fileSize,
      `Upload-Offset after the kill must be strictly between 0 and ${fileSize}, got ${afterKill.offset}`,
    )
    if (PROTOCOLS[protocol].ietf) await checkIetfHead(uploadUrl, afterKill, false, 'after the kill')
    t.diagnostic(`${protocol}, ${mode}: killed at progress ${reached[1]}; server offset after kill ${killedOffset}`)

    // --- second client: a new process resumes ------------------------------------------------
    const second = startClient([...clientArgs, '--upload-url', uploadUrl])
    children.push(second.child)
    const doneLine = await second.waitFor('done', (w) => w[0] === 'done', CLIENT_TIMEOUT_MS)
    const secondExit = await waitForExit(second.child, 10_000, 'second client')
    assert.equal(secondExit.code, 0, `second client failed: ${JSON.stringify(secondExit)}\n${second.stderr()}`)
    assert.equal(doneLine[1], uploadUrl, 'second client finished a different upload')
    checkResponses(second, protocol, 'second')

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
    assert.equal(sentBySecond, fileSize - resumedAt, 'bytes acknowledged to the second client')
    t.diagnostic(`second client resumed at ${resumedAt} and sent ${sentBySecond} bytes`)

    // --- final state --------------------------------------------------------------------------
    const final = await tusHead(uploadUrl)
    assert.equal(final.tusResumable, '1.0.0')
    assert.equal(final.offset, String(fileSize), 'final Upload-Offset')
    assert.equal(final.length, String(fileSize), 'final Upload-Length')
    if (PROTOCOLS[protocol].ietf) await checkIetfHead(uploadUrl, final, true, 'at the end')

    const download = await sha256Download(uploadUrl)
    assert.equal(download.size, fileSize, 'size of the GET download')
    assert.equal(download.contentLength, String(fileSize), 'Content-Length of the GET download')
    assert.equal(download.sha256, srcSha, 'sha256 of the GET download differs from the source')

    if (mode === 'local') {
      const stored = path.join(dataDir, id)
      assert.equal(fs.statSync(stored).size, fileSize, 'size of the stored file')
      assert.equal(await sha256File(stored), srcSha, 'sha256 of the stored file differs from the source')

      const info = JSON.parse(fs.readFileSync(path.join(dataDir, `${id}.info`), 'utf8'))
      assert.equal(info.id, id, '.info id')
      assert.equal(Number(info.offset), fileSize, '.info offset')
      assert.equal(Number(info.length), fileSize, '.info length')
    }
  } catch (err) {
    if (fs.existsSync(serverLog)) {
      const log = fs.readFileSync(serverLog, 'utf8')
      t.diagnostic(`tusk log (last 4000 chars):\n${log.slice(-4000)}`)
    }
    throw err
  }
}
