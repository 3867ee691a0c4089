/** The part of `node:sqlite` (Deno 2.2+, Node 22.5+) the Durable Object host uses. */
declare module "node:sqlite" {
  type Value = string | number | bigint | null | Uint8Array;
  export class StatementSync {
    all(...params: Value[]): Record<string, unknown>[];
    get(...params: Value[]): Record<string, unknown> | undefined;
    run(...params: Value[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  }
  export class DatabaseSync {
    constructor(path: string);
    exec(sql: string): void;
    prepare(sql: string): StatementSync;
    close(): void;
  }
}
