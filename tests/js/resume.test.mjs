// Resume test with the real tus-js-client against the real tusk binary (tus 1.0, local mode).
//
// A first client process uploads a 50 MiB random file in 5 MiB chunks and is SIGKILLed
// mid-upload; a second, fresh client process resumes from the upload URL. The stored file must
// then be byte-identical to the source, and the second client must not have re-sent the bytes
// the server already had. The scenario itself is in resume-scenario.mjs.
//
// The binary is $TUSK_BIN, or ../../target/debug/tusk relative to this file. Everything
// listens on and talks to 127.0.0.1 only. Every wait is a condition with a bounded timeout.

import test from 'node:test'

import { MiB } from './helpers.mjs'
import { runResumeScenario } from './resume-scenario.mjs'

test('tus-js-client resumes a killed 50 MiB upload without re-sending', { timeout: 240_000 }, (t) =>
  runResumeScenario(t, {
    protocol: 'tus',
    mode: 'local',
    fileSize: 50 * MiB,
    chunkSize: 5 * MiB,
    killAt: 15 * MiB,
  }),
)
