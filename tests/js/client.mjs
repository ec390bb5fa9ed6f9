#!/usr/bin/env node
// A tus client process built on tus-js-client's Node build, driven by the tests (resume,
// ietf, tls).
//
//   node client.mjs --endpoint URL --file PATH [--upload-url URL] [--url-out FILE]
//                   [--chunk-size BYTES] [--throttle-ms N] [--protocol P]
//
// Without --upload-url it creates a new upload at --endpoint; with it, it resumes that upload
// (tus-js-client sends HEAD, then PATCHes from the server's Upload-Offset).
// --protocol is tus-js-client's `protocol` option: tus (the default, i.e. tus-v1), tus-v1,
// ietf-draft-03 or ietf-draft-05 (the IETF resumable-upload draft: Upload-Draft-Interop-Version
// 5 or 6 on every request instead of Tus-Resumable).
// The file is read through an fs.ReadStream, which tus-js-client slices per chunk with fresh
// ranged read streams, so memory stays at about one chunk.
//
// stdout, one event per line (the test parses these):
//   created <url>              the POST returned this upload URL
//   resume-offset <n>          the HEAD before resuming reported Upload-Offset n
//   progress <sent> <total>    bytes handed to the socket so far, including the resumed offset
//   chunk <size> <acked> <total>  a PATCH was acknowledged: size bytes, server offset now acked
//   done <url>                 the upload is complete
//   response <method> <status> <tus-resumable> <upload-complete>
//                              every response, with those two headers' values (- if absent)
// On failure the error goes to stderr and the exit code is 1.
// --throttle-ms delays every PATCH by N ms before it is sent, so a test can kill the process
// mid-upload reliably.

import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Upload } from 'tus-js-client'

function fail(message) {
  process.stderr.write(`client: ${message}\n`)
  process.exit(1)
}

let args
try {
  ;({ values: args } = parseArgs({
    options: {
      endpoint: { type: 'string' },
      file: { type: 'string' },
      'upload-url': { type: 'string' },
      'url-out': { type: 'string' },
      'chunk-size': { type: 'string', default: String(5 * 1024 * 1024) },
      'throttle-ms': { type: 'string', default: '0' },
      protocol: { type: 'string', default: 'tus' },
    },
    strict: true,
  }))
} catch (err) {
  fail(err.message)
}

if (!args.endpoint && !args['upload-url']) fail('--endpoint or --upload-url is required')
if (!args.file) fail('--file is required')
const chunkSize = Number(args['chunk-size'])
if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) fail('--chunk-size must be a positive integer')
const throttleMs = Number(args['throttle-ms'])
if (!Number.isSafeInteger(throttleMs) || throttleMs < 0) fail('--throttle-ms must be a non-negative integer')
// tus-js-client rejects a protocol it does not know when the upload starts.
const protocol = args.protocol === 'tus' ? 'tus-v1' : args.protocol

// Pipes are written synchronously on Linux, so each line is out before the next step runs.
const emit = (line) => process.stdout.write(`${line}\n`)

let urlWritten = null
function writeUrlOut(url) {
  if (!args['url-out'] || url == null || url === urlWritten) return
  // Write then rename, so a reader never sees a half-written file.
  const tmp = `${args['url-out']}.tmp-${process.pid}`
  fs.writeFileSync(tmp, `${url}\n`)
  fs.renameSync(tmp, args['url-out'])
  urlWritten = url
}

const stream = fs.createReadStream(args.file)

const upload = new Upload(stream, {
  endpoint: args.endpoint,
  uploadUrl: args['upload-url'] ?? null,
  chunkSize,
  protocol,
  retryDelays: [0, 200, 500],
  metadata: { filename: path.basename(args.file), filetype: 'application/octet-stream' },
  onBeforeRequest: async (req) => {
    if (throttleMs > 0 && req.getMethod() === 'PATCH') await sleep(throttleMs)
  },
  onAfterResponse: (req, res) => {
    const method = req.getMethod()
    const header = (name) => res.getHeader(name) || '-'
    emit(`response ${method} ${res.getStatus()} ${header('Tus-Resumable')} ${header('Upload-Complete')}`)
    if (method === 'POST' && res.getStatus() === 201) {
      emit(`created ${res.getHeader('Location')}`)
    } else if (method === 'HEAD' && res.getStatus() >= 200 && res.getStatus() < 300) {
      emit(`resume-offset ${res.getHeader('Upload-Offset')}`)
    }
  },
  onUploadUrlAvailable: () => writeUrlOut(upload.url),
  onProgress: (bytesSent, bytesTotal) => {
    // Belt and braces: the URL is also known here at the latest.
    writeUrlOut(upload.url)
    emit(`progress ${bytesSent} ${bytesTotal}`)
  },
  onChunkComplete: (size, accepted, total) => emit(`chunk ${size} ${accepted} ${total}`),
  onSuccess: () => {
    writeUrlOut(upload.url)
    emit(`done ${upload.url}`)
    // Keep-alive sockets must not hold the process open.
    process.exit(0)
  },
  onError: (err) => fail(err?.stack ?? String(err)),
})

upload.start()
