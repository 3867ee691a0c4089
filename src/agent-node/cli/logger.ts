import os from "node:os";
import { pino, stdTimeFunctions, type Level, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";

export type LogFormat = "json" | "pretty";

/**
 * The log format: `auto` (the default) is pretty lines on a terminal and JSON lines on a pipe, a
 * file or a log collector, as pino-pretty's own CLI would be used by hand.
 */
export function resolveLogFormat(given: string | undefined, stream: { isTTY?: boolean } = process.stdout): LogFormat {
  const format = given ?? process.env.SHOAL_LOG_FORMAT ?? "auto";
  if (format === "json" || format === "pretty") return format;
  if (format !== "auto") throw new Error(`log format must be auto, json or pretty, not ${JSON.stringify(format)}`);
  return stream.isTTY ? "pretty" : "json";
}

export interface LoggerSettings {
  /** What wrote the line: agent, edge, devcluster. */
  component: string;
  /** Which one: agent-one, a host name. */
  instance?: string;
  level?: Level | "silent";
  format?: LogFormat;
  /** More fields on every line (zone, cluster). */
  base?: Record<string, unknown>;
}

/**
 * One log format for every Shoal process on Node: JSON lines with an ISO time, the level as a word,
 * and the component and instance on every line (so three processes on one terminal, or a fleet in
 * one collector, can be told apart).
 */
export function createLogger(settings: LoggerSettings): Logger {
  const instance = settings.instance ?? os.hostname();
  const options: LoggerOptions = {
    level: settings.level ?? "info",
    base: { component: settings.component, instance, ...settings.base },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  if ((settings.format ?? resolveLogFormat(undefined)) === "json") return pino(options);
  const stream = pretty({
    sync: true,
    colorize: process.stdout.isTTY === true,
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname,component,instance,zone,cluster,source",
    messageFormat: "{component}/{instance} {msg}",
  });
  return pino(options, stream);
}
