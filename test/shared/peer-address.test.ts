import { describe, expect, it } from "vitest";
import { parseIpv6, refusedAddress, sourceIdentity } from "../../src/shared/p2p/peer-address.js";

describe("peer addresses", () => {
  it.each([
    ["::", [0, 0, 0, 0, 0, 0, 0, 0]],
    ["::1", [0, 0, 0, 0, 0, 0, 0, 1]],
    ["fe80::1:2", [0xfe80, 0, 0, 0, 0, 0, 1, 2]],
    ["2001:db8:0:0:1:0:0:1", [0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]],
    ["::ffff:10.1.2.3", [0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203]],
    ["1:2:3:4:5:6:7::", [1, 2, 3, 4, 5, 6, 7, 0]],
  ])("parses %s", (text, groups) => {
    expect(parseIpv6(text)).toEqual(groups);
  });

  it.each(["1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "::g", "1:2:3:4:5:6:7", ":::", "::1.2.3"])("refuses to parse %s", (text) => {
    expect(parseIpv6(text)).toBeUndefined();
  });

  it.each([
    ["10.0.0.1", undefined],
    ["192.168.1.20", undefined],
    ["172.16.5.4", undefined],
    ["203.0.113.9", undefined],
    ["fd12:3456::1", undefined],
    ["2001:db8::1", undefined],
    ["127.0.0.1", "loopback"],
    ["127.5.5.5", "loopback"],
    ["::1", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["169.254.169.254", "link-local"],
    ["169.254.1.1", "link-local"],
    ["fe80::abcd", "link-local"],
    ["febf::1", "link-local"],
    ["::ffff:169.254.169.254", "link-local"],
    ["fd00:ec2::254", "metadata"],
    ["100.100.100.200", "metadata"],
    ["192.0.0.192", "metadata"],
    ["239.1.1.1", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["ff02::1", "multicast"],
  ])("%s: %s", (ip, kind) => {
    const reason = refusedAddress(ip, { allowLoopback: false });
    if (kind === undefined) expect(reason).toBeUndefined();
    else expect(reason).toContain(kind);
  });

  it("allows loopback only when told to", () => {
    expect(refusedAddress("127.0.0.1", { allowLoopback: true })).toBeUndefined();
    expect(refusedAddress("::1", { allowLoopback: true })).toBeUndefined();
    expect(refusedAddress("169.254.169.254", { allowLoopback: true })).toContain("link-local");
  });

  it("counts an IPv6 source by its /64, an IPv4 one (mapped or not) by its address", () => {
    expect(sourceIdentity("2001:db8:1:2:aaaa::1")).toBe(sourceIdentity("2001:db8:1:2:bbbb::9"));
    expect(sourceIdentity("2001:db8:1:3::1")).not.toBe(sourceIdentity("2001:db8:1:2::1"));
    expect(sourceIdentity("::ffff:10.0.0.1")).toBe(sourceIdentity("10.0.0.1"));
  });
});
