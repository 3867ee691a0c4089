import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { pieceHash } from "../../src/shared/p2p/metainfo.js";
import { pieceHashSync } from "../../src/agent-node/store/piece-hash.js";

describe("pieceHashSync", () => {
  it("agrees with the shared pieceHash for one-block and many-block pieces, short last pieces and empty ones", async () => {
    const cases = [
      { pieceLength: 1024, blockLength: 1024, sizes: [0, 1, 1000, 1024] },
      { pieceLength: 4096, blockLength: 1024, sizes: [0, 1, 1024, 1025, 3000, 4096] },
    ];
    for (const { pieceLength, blockLength, sizes } of cases) {
      for (const size of sizes) {
        const bytes = randomBytes(size);
        expect(pieceHashSync(bytes, { pieceLength, blockLength }), `${pieceLength}/${blockLength}, ${size} bytes`).toBe(await pieceHash(bytes, { pieceLength, blockLength }));
      }
    }
  });
});
