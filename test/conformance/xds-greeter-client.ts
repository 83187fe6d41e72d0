// A proxyless gRPC client (@grpc/grpc-js-xds, unmodified) run as its own process, because the
// xDS bootstrap is read once per process. It reads JSON commands on stdin and answers on stdout.
//
// Command: {"target":"xds:///greeter","count":1000,"concurrency":8,"metadata":{"x-user":"a"}}
// Answer:  {"backends":{"v1":801,"v2":199},"errors":{"UNAVAILABLE":0},"ms":1234}
// With "latencies":true the answer also has each call's duration by outcome (backend or status):
//          {..., "latenciesMs":{"v1":[3,2,...],"DEADLINE_EXCEEDED":[301]}}
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { GreeterClient, type HelloReply } from '../fixtures/greeter';
import type { CallCommand as Command } from './greeter-client-process';

grpcXds.register();

const clients = new Map<string, grpc.Client>();

function clientFor(target: string): grpc.Client {
  let client = clients.get(target);
  if (!client) {
    client = new GreeterClient(target, grpc.credentials.createInsecure());
    clients.set(target, client);
  }
  return client;
}

function callOnce(client: grpc.Client, metadata: grpc.Metadata, deadlineMs: number): Promise<{ backend?: string; code?: string }> {
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + deadlineMs);
    (client as unknown as {
      SayHello(request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: HelloReply) => void): void;
    }).SayHello({ name: 'mesh' }, metadata, { deadline }, (error, reply) => {
      if (error) resolve({ code: grpc.status[error.code] ?? String(error.code) });
      else resolve({ backend: reply!.backend });
    });
  });
}

async function run(command: Command): Promise<object> {
  const started = Date.now();
  const client = clientFor(command.target);
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(command.metadata ?? {})) metadata.set(key, value);
  const backends: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const latenciesMs: Record<string, number[]> = {};
  let remaining = command.count;
  const worker = async (index: number) => {
    if (command.staggerMs) await new Promise((resolve) => setTimeout(resolve, index * command.staggerMs!));
    while (remaining > 0) {
      remaining--;
      const callStarted = performance.now();
      const result = await callOnce(client, metadata, command.deadlineMs ?? 5000);
      if (result.backend) backends[result.backend] = (backends[result.backend] ?? 0) + 1;
      else errors[result.code!] = (errors[result.code!] ?? 0) + 1;
      if (command.latencies) (latenciesMs[result.backend ?? result.code!] ??= []).push(Math.round(performance.now() - callStarted));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, command.concurrency ?? 8) }, (_, index) => worker(index)));
  return { backends, errors, ms: Date.now() - started, ...(command.latencies ? { latenciesMs } : {}) };
}

const lines = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      process.stdout.write(`${JSON.stringify(await run(JSON.parse(line) as Command))}\n`);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`);
    }
  });
});
lines.on('close', () => {
  void queue.then(() => {
    for (const client of clients.values()) client.close();
    process.exit(0);
  });
});
