#!/usr/bin/env node
// The `shoal` command: runs the TypeScript sources through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../src/agent-node/main.ts");
