// The IETF resumable-upload draft with the real tus-js-client (protocol 'ietf-draft-05', i.e.
// Upload-Draft-Interop-Version: 6 and no Tus-Resumable) against the real tusk binary: a 20 MiB
// upload in 5 MiB chunks is SIGKILLed mid-upload and resumed by a new client process, and must
// be byte-exact, without re-sent bytes. Once in local mode (a data directory) and once over
// the distributed store (one node on S3, Redis and etcd). The scenario is in
// resume-scenario.mjs.
//
// The distributed test needs the test services (scripts/services.sh up; scripts/test.sh starts
// them): TUSK_TEST_REDIS_URL, TUSK_TEST_ETCD_ENDPOINTS and TUSK_TEST_S3_ENDPOINT; it fails
// without them, as parallel.test.mjs does. Everything listens on and talks to 127.0.0.1 only;
// every wait is bounded.

import test from 'node:test'

import { MiB } from './helpers.mjs'
import { runResumeScenario } from './resume-scenario.mjs'

for (const mode of ['local', 'distributed']) {
  test(`ietf-draft-05: tus-js-client resumes a killed 20 MiB upload (${mode})`, { timeout: 240_000 }, (t) =>
    runResumeScenario(t, {
      protocol: 'ietf-draft-05',
      mode,
      fileSize: 20 * MiB,
      chunkSize: 5 * MiB,
      killAt: 10 * MiB,
    }),
  )
}
