// Structured JSON logging (pino) shared by the server, the agent and the CLI.
// Components take a child logger carrying their context instead of a global one.
import pino from 'pino';

export type Logger = pino.Logger;

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Where to write; defaults to stdout. Tests pass a stream to read the lines back. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? process.env.MESH_LOG_LEVEL ?? 'info';
  return pino({ name: options.name, level, base: { pid: process.pid } }, options.destination ?? pino.destination(1));
}

/** A logger that drops everything, for unit tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
