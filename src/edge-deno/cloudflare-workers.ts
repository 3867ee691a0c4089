/**
 * What `import { DurableObject } from "cloudflare:workers"` gives the Worker's classes on Deno
 * (deno.json maps the specifier here): the base class that keeps `ctx` and `env`.
 */
export class DurableObject<Env = unknown> {
  constructor(
    protected readonly ctx: DurableObjectState,
    protected readonly env: Env,
  ) {}
}
