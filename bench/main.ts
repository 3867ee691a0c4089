import { parseArgs } from "node:util";
import { benchServe, parseServeArgs } from "./serve.js";

/**
 * `npm run bench -- <name> [options]`. Benchmarks print their figures side by side with a
 * baseline measured in the same run, and write them as JSON under --out (default ./bench-out).
 */
const USAGE = `usage: npm run bench -- serve [--size 1GiB] [--readers 8] [--rounds 3] [--out bench-out]

  serve   a blob served from a warm agent store to concurrent readers, against
          Debian's docker-registry (distribution 2.8) serving the same blob`;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    size: { type: "string" },
    readers: { type: "string" },
    rounds: { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});

const [name] = positionals;
if (values.help || !name) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
switch (name) {
  case "serve":
    await benchServe(parseServeArgs(values));
    break;
  default:
    console.error(`unknown benchmark ${JSON.stringify(name)}\n${USAGE}`);
    process.exit(2);
}
