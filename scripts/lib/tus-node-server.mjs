// tus-node-server (@tus/server) as the benchmarks' peer: the same steps as tusk's, against the
// reference Node.js implementation with its own S3 or file store, in the same run.
//
//   node scripts/lib/tus-node-server.mjs --modules DIR --store s3 --s3-endpoint URL --bucket B
//        [--part-size BYTES] [--port N]
//   node scripts/lib/tus-node-server.mjs --modules DIR --store file --dir DIR [--port N]
//
// --modules is the directory whose node_modules holds @tus/server, @tus/s3-store and
// @tus/file-store (scripts/lib/peers.sh installs them there). Listens on 127.0.0.1 only (port 0
// by default: any free port) under /files, and prints one first line
//     tus-node-server listening on http://127.0.0.1:PORT/files/
// once it accepts connections. Options not named here are the stores' defaults (for the S3
// store: parts spooled to files in os.tmpdir(), at most 60 part uploads in flight per process,
// upload state in its `<id>.info` object and in memory). Exits on SIGTERM or SIGINT.
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values: args } = parseArgs({
    options: {
        modules: { type: 'string' },
        store: { type: 'string' },
        port: { type: 'string', default: '0' },
        'part-size': { type: 'string', default: String(8 * 1024 * 1024) },
        's3-endpoint': { type: 'string' },
        bucket: { type: 'string' },
        dir: { type: 'string' },
    },
    strict: true,
});

function fail(message) {
    process.stderr.write(`tus-node-server.mjs: ${message}\n`);
    process.exit(2);
}

if (!args.modules) fail('--modules DIR is required');
// The packages live outside the repository, so resolve them from --modules, not from here.
const require = createRequire(path.join(path.resolve(args.modules), 'package.json'));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);

const { Server } = await load('@tus/server');
let datastore;
if (args.store === 's3') {
    if (!args['s3-endpoint'] || !args.bucket) fail('--store s3 needs --s3-endpoint and --bucket');
    const endpoint = new URL(args['s3-endpoint']);
    if (!/^127\.\d+\.\d+\.\d+$/.test(endpoint.hostname)) fail('the S3 endpoint must be on 127.0.0.1');
    const partSize = Number(args['part-size']);
    if (!Number.isSafeInteger(partSize) || partSize < 5 * 1024 * 1024) fail('--part-size: at least 5 MiB');
    const { S3Store } = await load('@tus/s3-store');
    datastore = new S3Store({
        partSize,
        s3ClientConfig: {
            bucket: args.bucket,
            endpoint: endpoint.href.replace(/\/$/, ''),
            region: 'us-east-1',
            forcePathStyle: true,
            credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        },
    });
} else if (args.store === 'file') {
    if (!args.dir) fail('--store file needs --dir');
    const { FileStore } = await load('@tus/file-store');
    datastore = new FileStore({ directory: path.resolve(args.dir) });
} else {
    fail("--store must be 's3' or 'file'");
}

const server = new Server({ path: '/files', datastore });
const http = server.listen(Number(args.port), '127.0.0.1', () => {
    const { port } = http.address();
    process.stdout.write(`tus-node-server listening on http://127.0.0.1:${port}/files/\n`);
});
http.on('error', (err) => fail(`listen: ${err.message}`));

function stop() {
    http.close(() => process.exit(0));
    http.closeAllConnections?.();
    // Bounded: exit even if a request hangs on.
    setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
