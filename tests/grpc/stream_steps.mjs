// StreamSteps with a second, independent gRPC implementation: the npm package @grpc/grpc-js
// with @grpc/proto-loader reading proto/service.proto as it is (no generated code of ours).
//   node tests/grpc/stream_steps.mjs HOST:PORT
// Opens a session, streams 500 batches on one bidirectional call without waiting for
// answers, checks that every answer comes back in order (seq 1..500, t0 advancing), that a
// refused batch in the middle is answered in its place with its error while the call goes
// on, and that the call ends with status OK; then a call cancelled mid-stream. TAP output.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTO = path.join(HERE, '..', '..', 'proto');
const target = process.argv[2];
let n = 0, failed = 0;
const check = (cond, what) => {
  n++;
  if (!cond) failed++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
};

const def = protoLoader.loadSync(path.join(PROTO, 'service.proto'), {
  includeDirs: [PROTO], keepCase: true, longs: Number, defaults: false,
});
const pkg = grpc.loadPackageDefinition(def);
const client = new pkg.spikeserve.v1.Spikeserve(target, grpc.credentials.createInsecure());
const unary = (name, req) => new Promise((ok, fail) =>
  client[name](req, { deadline: Date.now() + 10000 }, (e, r) => (e ? fail(e) : ok(r))));

const batch = (sid, seq, input = 1) => ({
  session_id: sid, seq, steps: 2, events: [{ step: 0, input, value: 1 }],
});

const info = await unary('OpenSession', { model: 'tiny' });
check(info.session_id && info.session_id.length === 32, 'OpenSession over grpc-js');
const sid = info.session_id;

const N = 500, BAD = 250;
const answers = await new Promise((resolve, reject) => {
  const got = [];
  const call = client.StreamSteps({ deadline: Date.now() + 60000 });
  call.on('data', (r) => got.push(r));
  call.on('error', reject);
  call.on('status', (s) => (s.code === grpc.status.OK ? resolve(got) : reject(s)));
  for (let i = 1; i <= N; i++) {
    if (i === BAD) call.write({ session_id: sid, steps: 2, events: [{ step: 0, input: 999 }] });
    else call.write(batch(sid, i < BAD ? i : i - 1));
  }
  call.end();
});
check(answers.length === N, `${N} batches written at once, ${answers.length} answers`);
const good = answers.filter((a) => !a.error);
check(good.every((a, k) => a.seq === k + 1), 'answers in order, seq 1..' + (N - 1));
check(good.every((a, k) => a.t0 === 2 * k), 't0 advances by 2 per batch');
const bad = answers[BAD - 1];
check(bad && bad.error && bad.status === 400 && /input 999/.test(bad.error.message),
  'the refused batch is answered in its place: 400, ' + (bad && bad.error && bad.error.message));

const cancelled = await new Promise((resolve) => {
  let got = 0;
  const call = client.StreamSteps({ deadline: Date.now() + 60000 });
  let seq = N;
  const timer = setInterval(() => call.write(batch(sid, seq++)), 2);
  call.on('data', () => { if (++got === 10) { clearInterval(timer); call.cancel(); } });
  call.on('error', (e) => resolve(e.code));
  call.on('status', (s) => resolve(s.code));
});
check(cancelled === grpc.status.CANCELLED, 'a call cancelled by the client: CANCELLED');
const after = await unary('GetSession', { session_id: sid });
check(after.last_seq >= N + 9, `the server goes on (last_seq ${after.last_seq})`);
client.close();
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
