// One PATCH of a whole file to an existing tus upload with Node's own HTTP/1.1 (https) or
// HTTP/2 (http2) client, for scripts/bench-tls.sh (CLIENT=node). Prints "<status> <seconds>".
//
//   node patch-upload.mjs h1|h2 UPLOAD_URL FILE CA_PEM
import fs from 'node:fs'
import http2 from 'node:http2'
import https from 'node:https'

const [, , proto, url, file, caFile] = process.argv
if (!['h1', 'h2'].includes(proto) || !url || !file || !caFile) {
  process.stderr.write('usage: patch-upload.mjs h1|h2 UPLOAD_URL FILE CA_PEM\n')
  process.exit(2)
}
const size = fs.statSync(file).size
const ca = fs.readFileSync(caFile)
const headers = {
  'tus-resumable': '1.0.0',
  'content-type': 'application/offset+octet-stream',
  'upload-offset': '0',
  'content-length': String(size),
}
const body = () => fs.createReadStream(file, { highWaterMark: 1 << 20 })

function viaHttp2() {
  return new Promise((resolve, reject) => {
    const target = new URL(url)
    const session = http2.connect(target.origin, { ca })
    session.on('error', reject)
    const req = session.request({ ':method': 'PATCH', ':path': target.pathname, ...headers })
    req.on('response', (h) => {
      req.resume()
      req.on('end', () => {
        session.close()
        resolve(h[':status'])
      })
    })
    req.on('error', reject)
    body().pipe(req)
  })
}

function viaHttp1() {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'PATCH', ca, headers }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', reject)
    body().pipe(req)
  })
}

const started = process.hrtime.bigint()
const status = await (proto === 'h2' ? viaHttp2() : viaHttp1())
const seconds = Number(process.hrtime.bigint() - started) / 1e9
process.stdout.write(`${status} ${seconds.toFixed(3)}\n`)
