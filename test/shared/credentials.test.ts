import { describe, expect, it } from "vitest";
import { authenticate, authorizationHeader, constantTimeEqual, parseAuthorization, parseTokenList } from "../../src/shared/auth/credentials.js";

const TOKENS = parseTokenList("alice:alice-token-0123456789, bob:bob-token-0123456789abc");
const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

describe("push tokens", () => {
  it("parses user:token pairs and refuses malformed or short entries", () => {
    expect(TOKENS).toEqual([
      { user: "alice", token: "alice-token-0123456789" },
      { user: "bob", token: "bob-token-0123456789abc" },
    ]);
    expect(parseTokenList("")).toEqual([]);
    expect(parseTokenList("a:b:c-0123456789abcdef")).toEqual([{ user: "a", token: "b:c-0123456789abcdef" }]);
    expect(() => parseTokenList("justatoken0123456789")).toThrow(/user:token/);
    expect(() => parseTokenList(":token0123456789abcdef")).toThrow(/user:token/);
    expect(() => parseTokenList("alice:short")).toThrow(/shorter than 16/);
  });

  it("reads Basic and Bearer headers; an empty Basic login is anonymous (podman without a login sends one)", () => {
    expect(parseAuthorization(undefined)).toEqual({ kind: "anonymous" });
    expect(parseAuthorization(basic(":"))).toEqual({ kind: "anonymous" });
    expect(parseAuthorization(basic("alice:x"))).toEqual({ kind: "basic", user: "alice", token: "x" });
    expect(parseAuthorization("bearer abc")).toEqual({ kind: "bearer", token: "abc" });
    for (const bad of ["Basic !!!", "Basic " + Buffer.from("nocolon").toString("base64"), "Digest x", "Bearer", "Basic " + Buffer.from([0xff, 0x3a]).toString("base64")]) {
      expect(parseAuthorization(bad).kind).toBe("malformed");
    }
  });

  it("authenticates the right user with the right token only", () => {
    expect(authenticate(parseAuthorization(basic("alice:alice-token-0123456789")), TOKENS)?.user).toBe("alice");
    expect(authenticate(parseAuthorization(basic("bob:alice-token-0123456789")), TOKENS)).toBeUndefined();
    expect(authenticate(parseAuthorization(basic("alice:alice-token-012345678")), TOKENS)).toBeUndefined();
    expect(authenticate(parseAuthorization("Bearer bob-token-0123456789abc"), TOKENS)?.user).toBe("bob");
    expect(authenticate(parseAuthorization("Bearer nope"), TOKENS)).toBeUndefined();
    expect(authenticate({ kind: "anonymous" }, TOKENS)).toBeUndefined();
  });

  it("builds the header an agent sends: Basic for user:token, Bearer for a bare token", () => {
    expect(authorizationHeader("alice:alice-token-0123456789")).toBe(basic("alice:alice-token-0123456789"));
    expect(authorizationHeader("bare-token")).toBe("Bearer bare-token");
  });

  it("compares without regard to where bytes differ", () => {
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true);
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false);
    expect(constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3]))).toBe(false);
  });
});
