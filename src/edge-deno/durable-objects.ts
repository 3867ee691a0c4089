/// <reference path="./node-sqlite.d.ts" />
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { mkdir, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";

/**
 * Durable Objects for the self-hosted edge: the Worker's own classes (tag index, upload sessions,
 * tracker, catalog), each object with a SQLite file of its own under `dir/<class>/<id>.sqlite`,
 * reached through stubs that call its methods as RPC does. What the platform guarantees and the
 * classes rely on, kept here:
 * - one instance per id, alive while the process runs;
 * - calls to one object run one at a time, in order (stricter than the platform's input gates,
 *   which is safe for code written against them), after its `blockConcurrencyWhile` work;
 * - `ctx.storage`: `sql.exec` (SQLite), `transactionSync`, the key-value `get/put/delete/deleteAll`,
 *   and alarms, which survive a restart (they are scheduled again when the host starts).
 */
type ObjectClass = new (ctx: ObjectState, env: unknown) => Record<string, unknown>;

export class ObjectNamespaces {
  private readonly instances = new Map<string, LiveObject>();

  constructor(
    private readonly dir: string,
    private readonly classes: Record<string, ObjectClass>,
    private readonly env: () => unknown,
  ) {}

  namespace(className: string): ObjectNamespace {
    if (!this.classes[className]) throw new Error(`no Durable Object class ${className}`);
    return new ObjectNamespace(this, className);
  }

  object(className: string, id: ObjectId): LiveObject {
    const key = `${className}/${id.toString()}`;
    let live = this.instances.get(key);
    if (!live) {
      const made: LiveObject = new LiveObject(path.join(this.dir, className, `${id.toString()}.sqlite`), this.classes[className]!, id, this.env(), () => {
        // Idle with no alarm to keep: forgotten (its file, if any, is read again on the next call).
        if (this.instances.get(key) === made) this.instances.delete(key);
      });
      live = made;
      this.instances.set(key, live);
    }
    return live;
  }

  /** Alarms set before a restart fire again (or at once, when already due). */
  async restoreAlarms(): Promise<number> {
    let restored = 0;
    for (const className of Object.keys(this.classes)) {
      const folder = path.join(this.dir, className);
      await mkdir(folder, { recursive: true });
      for (const name of await readdir(folder)) {
        if (!name.endsWith(".sqlite")) continue;
        const db = new DatabaseSync(path.join(folder, name));
        let alarm: number | undefined;
        try {
          const row = db.prepare(`SELECT value FROM _shoal_kv WHERE key = ?`).get(ALARM_KEY) as { value: string } | undefined;
          alarm = row ? (JSON.parse(row.value) as number) : undefined;
        } catch {
          alarm = undefined; // no key-value table: never had an alarm
        } finally {
          db.close();
        }
        if (alarm === undefined) continue;
        const live = this.object(className, new ObjectId(name.slice(0, -".sqlite".length)));
        live.armAlarm(alarm);
        restored++;
      }
    }
    return restored;
  }

  close(): void {
    for (const live of this.instances.values()) live.close();
  }
}

export class ObjectId {
  constructor(
    private readonly hex: string,
    readonly name?: string,
  ) {}

  toString(): string {
    return this.hex;
  }

  equals(other: ObjectId): boolean {
    return other.toString() === this.hex;
  }
}

export class ObjectNamespace {
  constructor(
    private readonly host: ObjectNamespaces,
    private readonly className: string,
  ) {}

  idFromName(name: string): ObjectId {
    return new ObjectId(createHash("sha256").update(`${this.className}\0${name}`).digest("hex"), name);
  }

  idFromString(hex: string): ObjectId {
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new TypeError("invalid Durable Object id");
    return new ObjectId(hex);
  }

  get(id: ObjectId): Record<string, (...args: unknown[]) => Promise<unknown>> {
    return new Proxy({} as Record<string, (...args: unknown[]) => Promise<unknown>>, {
      get: (_target, property) => {
        if (typeof property !== "string" || property === "then") return undefined;
        // Looked up per call: an idle object may have been forgotten since the stub was made.
        return (...args: unknown[]) => this.host.object(this.className, id).call(property, args);
      },
    });
  }
}

const ALARM_KEY = "__alarm";
const IDLE_CLOSE_MS = 60_000;

class LiveObject {
  private readonly state: ObjectState;
  private instance: Record<string, unknown> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private alarmTimer: ReturnType<typeof setTimeout> | undefined;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    file: string,
    private readonly cls: ObjectClass,
    id: ObjectId,
    private readonly env: unknown,
    private readonly forget: () => void,
  ) {
    this.state = new ObjectState(file, id, (at) => this.armAlarm(at));
  }

  private pending = 0;
  private alarmArmed = false;

  private get target(): Record<string, unknown> {
    this.instance ??= new this.cls(this.state, this.env);
    return this.instance;
  }

  /** Runs a method after every earlier call to this object has finished. */
  call(method: string, args: unknown[]): Promise<unknown> {
    clearTimeout(this.idleTimer);
    this.pending++;
    const run = async () => {
      await this.state.ready();
      const target = this.target;
      await this.state.ready(); // the constructor may have asked for blockConcurrencyWhile
      const fn = target[method];
      if (typeof fn !== "function") throw new TypeError(`${this.cls.name} has no method ${method}`);
      return (fn as (...a: unknown[]) => unknown).apply(target, args);
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    // An object nobody calls for a while gives its SQLite handle back and, unless an alarm is
    // due, is forgotten altogether: one per blob's tracker, or per repository name anyone reads,
    // would otherwise pile up for as long as the process runs.
    void this.queue.then(() => {
      this.pending--;
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => {
        if (this.pending > 0) return;
        this.state.close();
        if (!this.alarmArmed) this.forget();
      }, IDLE_CLOSE_MS);
      this.idleTimer.unref?.();
    });
    return result;
  }

  armAlarm(at: number | null): void {
    clearTimeout(this.alarmTimer);
    this.alarmArmed = at !== null;
    if (at === null) return;
    this.alarmTimer = setTimeout(
      () => {
        this.alarmArmed = false;
        this.state.clearAlarmRecord();
        this.call("alarm", []).catch((error: Error) => console.error(JSON.stringify({ level: "error", msg: "alarm failed", error: error.message })));
      },
      Math.max(0, at - Date.now()),
    );
  }

  close(): void {
    clearTimeout(this.alarmTimer);
    clearTimeout(this.idleTimer);
    this.state.close();
  }
}

/** `DurableObjectState` as the classes use it. */
export class ObjectState {
  private db: DatabaseSync | undefined;
  private inMemory = false;
  private blocked: Promise<unknown> = Promise.resolve();
  readonly storage: ObjectStorage;

  constructor(
    private readonly file: string,
    readonly id: ObjectId,
    onAlarm: (at: number | null) => void,
  ) {
    this.storage = new ObjectStorage(() => this.database(), () => this.reset(), onAlarm, () => this.persistIfWritten());
  }

  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T> {
    const result = fn();
    this.blocked = this.blocked.then(() => result.catch(() => undefined));
    return result;
  }

  ready(): Promise<unknown> {
    return this.blocked;
  }

  waitUntil(promise: Promise<unknown>): void {
    promise.catch(() => undefined);
  }

  /**
   * The object's database. An object with no file yet starts in memory: a class's constructor
   * creates its tables on every object, and an anonymous read of a repository that does not exist
   * must not leave a file behind (200 reads of random names left 200 files). The first write of a
   * row moves it to its file (`persistIfWritten`).
   */
  private database(): DatabaseSync {
    if (!this.db) {
      this.inMemory = !existsSync(this.file);
      this.db = this.inMemory ? new DatabaseSync(":memory:") : this.openFile();
      this.db.exec("CREATE TABLE IF NOT EXISTS _shoal_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    }
    return this.db;
  }

  private openFile(): DatabaseSync {
    mkdirSyncOnce(path.dirname(this.file));
    const db = new DatabaseSync(this.file);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    return db;
  }

  /** After a statement outside a transaction: an in-memory database that holds rows goes to its file. */
  persistIfWritten(): void {
    const db = this.db;
    if (!db || !this.inMemory) return;
    const { changes } = db.prepare("SELECT total_changes() AS changes").get() as { changes: number };
    if (Number(changes) === 0) return;
    // Copied statement by statement: VACUUM INTO needs ATTACH, which Deno's sqlite refuses.
    const file = this.openFile();
    file.exec("BEGIN");
    const objects = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type <> 'table'").all() as { type: string; name: string; sql: string }[];
    for (const { type, name, sql } of objects) {
      file.exec(sql);
      if (type !== "table") continue;
      for (const row of db.prepare(`SELECT * FROM "${name}"`).all()) {
        const columns = Object.keys(row);
        const insert = `INSERT INTO "${name}" (${columns.map((c) => `"${c}"`).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`;
        file.prepare(insert).run(...(Object.values(row) as (string | number | bigint | null | Uint8Array)[]));
      }
    }
    file.exec("COMMIT");
    db.close();
    this.db = file;
    this.inMemory = false;
  }

  /** deleteAll(): the object's storage is gone, as if new. */
  private async reset(): Promise<void> {
    this.db?.close();
    this.db = undefined;
    for (const suffix of ["", "-wal", "-shm"]) await rm(`${this.file}${suffix}`, { force: true });
  }

  clearAlarmRecord(): void {
    this.storage.forgetAlarm();
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }
}

class ObjectStorage {
  readonly sql: SqlShim;

  constructor(
    private readonly db: () => DatabaseSync,
    private readonly reset: () => Promise<void>,
    private readonly onAlarm: (at: number | null) => void,
    private readonly written: () => void,
  ) {
    this.sql = new SqlShim(db, () => this.touched());
  }

  private touched(): void {
    if (this.depth === 0) this.written();
  }

  /** Open transactionSync calls: an in-memory database moves to its file only after the commit. */
  private depth = 0;

  transactionSync<T>(fn: () => T): T {
    const db = this.db();
    db.exec("BEGIN");
    this.depth++;
    try {
      const result = fn();
      this.depth--;
      db.exec("COMMIT");
      this.written();
      return result;
    } catch (error) {
      if (this.depth > 0) this.depth--;
      db.exec("ROLLBACK");
      throw error;
    }
  }

  async get<T>(key: string): Promise<T | undefined> {
    const row = this.db().prepare(`SELECT value FROM _shoal_kv WHERE key = ?`).get(key) as { value: string } | undefined;
    return row ? (decode(row.value) as T) : undefined;
  }

  async put(key: string, value: unknown): Promise<void> {
    this.db().prepare(`INSERT OR REPLACE INTO _shoal_kv (key, value) VALUES (?, ?)`).run(key, encode(value));
    this.touched();
  }

  async delete(key: string): Promise<boolean> {
    return Number(this.db().prepare(`DELETE FROM _shoal_kv WHERE key = ?`).run(key).changes) > 0;
  }

  async deleteAll(): Promise<void> {
    this.onAlarm(null);
    await this.reset();
  }

  async getAlarm(): Promise<number | null> {
    return (await this.get<number>(ALARM_KEY)) ?? null;
  }

  async setAlarm(at: number | Date): Promise<void> {
    const time = typeof at === "number" ? at : at.getTime();
    await this.put(ALARM_KEY, time);
    this.onAlarm(time);
  }

  async deleteAlarm(): Promise<void> {
    this.forgetAlarm();
    this.onAlarm(null);
  }

  forgetAlarm(): void {
    try {
      this.db().prepare(`DELETE FROM _shoal_kv WHERE key = ?`).run(ALARM_KEY);
    } catch {
      // storage already gone
    }
  }
}

/** `SqlStorage.exec`: several statements at once, bindings, and a cursor over the last one's rows. */
class SqlShim {
  constructor(
    private readonly db: () => DatabaseSync,
    private readonly written: () => void,
  ) {}

  exec<T = Record<string, unknown>>(query: string, ...bindings: unknown[]): SqlCursor<T> {
    const db = this.db();
    const statements = splitStatements(query);
    let rows: T[] = [];
    let rowsWritten = 0;
    for (const [i, text] of statements.entries()) {
      const statement = db.prepare(text);
      const last = i === statements.length - 1;
      const params = (last ? bindings : []) as (string | number | bigint | null | Uint8Array)[];
      if (READS_ROWS.test(text)) {
        rows = statement.all(...params) as T[];
      } else {
        rowsWritten += Number(statement.run(...params).changes);
      }
    }
    this.written();
    return new SqlCursor(rows, rowsWritten);
  }

  get databaseSize(): number {
    return 0;
  }
}

class SqlCursor<T> {
  constructor(
    private readonly rows: T[],
    readonly rowsWritten: number,
  ) {}

  get rowsRead(): number {
    return this.rows.length;
  }

  toArray(): T[] {
    return this.rows.map((row) => ({ ...row }));
  }

  one(): T {
    if (this.rows.length !== 1) throw new Error(`expected exactly one row, got ${this.rows.length}`);
    return { ...this.rows[0]! };
  }

  [Symbol.iterator](): Iterator<T> {
    return this.toArray()[Symbol.iterator]();
  }
}

/** Statements that answer with rows (the rest report how many rows they changed). */
const READS_ROWS = /^\s*(SELECT|WITH|PRAGMA|VALUES)\b|\bRETURNING\b/i;

/** Statements separated by ";" outside quotes. */
function splitStatements(query: string): string[] {
  const out: string[] = [];
  let current = "";
  let quote: string | undefined;
  for (const ch of query) {
    if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === ";") {
      if (current.trim()) out.push(current);
      current = "";
      continue;
    }
    current += ch;
  }
  if (current.trim()) out.push(current);
  return out;
}

/** Stored values: JSON, with byte arrays kept as such (what structured clone would keep). */
function encode(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { __bytes: Buffer.from(v).toString("base64") } : v));
}

function decode(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) =>
    v && typeof v === "object" && "__bytes" in v ? new Uint8Array(Buffer.from((v as { __bytes: string }).__bytes, "base64")) : v,
  );
}

const made = new Set<string>();
function mkdirSyncOnce(folder: string): void {
  if (made.has(folder)) return;
  // Synchronous: storage calls are synchronous on the platform too.
  mkdirSync(folder, { recursive: true });
  made.add(folder);
}
