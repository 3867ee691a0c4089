import { NONCE_BYTES, endpoint, newNonce, proof, splitResponderAuth, verifyProof, type Transcript } from "../../shared/p2p/auth.js";
import { PROTOCOL_ID, PROTOCOL_VERSION, WIRE_ERROR, WireError, type Frame, type Handshake } from "../../shared/p2p/wire/frames.js";
import { nextFrame, type PeerConnection } from "./peer-connection.js";

/**
 * The opening of a peer connection, both sides (one place, so they cannot drift apart):
 *
 *   initiator → handshake (its bitfield; with a cluster key, its nonce)
 *   responder → handshake (no pieces yet; with a key, its nonce and proof)
 *   initiator → auth (its proof)                          only with a cluster key
 *   responder → bitfield, or an error (unknown blob, …)
 *
 * The responder says nothing about what it holds until the initiator has proved itself, and the
 * initiator takes no piece from a responder that has not. The proofs cover the responder's
 * endpoint as each side sees this connection (see auth.ts), so a handshake passed on by a host in
 * the middle, to another peer port or back to its own initiator, fails; and neither side accepts
 * the other claiming its own peer id, nor (when the handout named one) an id other than expected.
 * A failure refuses the connection with the reason (UNAUTHORIZED, PROTOCOL) and rejects.
 */
export interface HandshakeOptions {
  /** The cluster secret's key bytes; undefined: the cluster does not authenticate peers. */
  key: Uint8Array | undefined;
  peerId: Uint8Array;
  timeoutMs: number;
  /** Initiator: the peer id the handout gave for the address dialled; another id is refused. */
  expectedPeerId?: Uint8Array;
}

export interface Opening {
  digest: string;
  pieceCount: number;
}

/** Initiator: returns the responder's handshake and the bitfield it sent after it. */
export async function initiateHandshake(
  connection: PeerConnection,
  opening: Opening & { bitfield: Uint8Array },
  options: HandshakeOptions,
): Promise<{ remote: Handshake; bitfield: Uint8Array }> {
  const nonce = options.key ? newNonce() : new Uint8Array(0);
  connection.send({ type: "handshake", version: PROTOCOL_VERSION, protocol: PROTOCOL_ID, ...opening, peerId: options.peerId, auth: nonce }).catch(() => undefined);
  const remote = expectFrame(connection, await nextFrame(connection, options.timeoutMs), "handshake");
  if (remote.digest !== opening.digest || remote.pieceCount !== opening.pieceCount) fail(connection, WIRE_ERROR.PROTOCOL, "handshake does not match the swarm");
  if (sameId(remote.peerId, options.peerId)) fail(connection, WIRE_ERROR.UNAUTHORIZED, "the peer claims this agent's own peer id");
  if (options.expectedPeerId && !sameId(remote.peerId, options.expectedPeerId)) fail(connection, WIRE_ERROR.UNAUTHORIZED, "the peer's id is not the one it was handed out with");
  if (options.key) {
    const answer = splitResponderAuth(remote.auth);
    if (!answer) fail(connection, WIRE_ERROR.UNAUTHORIZED, "this swarm needs cluster authentication; the peer sent none");
    const transcript: Transcript = {
      digest: opening.digest,
      initiatorNonce: nonce,
      responderNonce: answer.nonce,
      initiatorId: options.peerId,
      responderId: remote.peerId,
      // The address we dialled: a relaying host's own, never the peer port it relays to.
      responderEndpoint: endpoint(connection.socket.remoteAddress, connection.socket.remotePort),
    };
    if (!verifyProof(options.key, "responder", transcript, answer.proof)) fail(connection, WIRE_ERROR.UNAUTHORIZED, "the peer does not know the cluster secret, or relays another's proof");
    connection.send({ type: "auth", proof: proof(options.key, "initiator", transcript) }).catch(() => undefined);
  } else if (remote.auth.length > 0) {
    fail(connection, WIRE_ERROR.UNAUTHORIZED, "the peer authenticates with a cluster secret and this agent has none");
  }
  const bitfield = expectFrame(connection, await nextFrame(connection, options.timeoutMs), "bitfield");
  return { remote, bitfield: bitfield.bitfield };
}

/**
 * Responder: reads and checks the initiator's handshake, answers it, checks its proof. `check`
 * vets the opening (protocol, digest) before anything is sent: it returns a refusal or undefined.
 * The caller then sends the bitfield (or refuses: unknown blob).
 */
export async function acceptHandshake(
  connection: PeerConnection,
  options: HandshakeOptions,
  check: (hello: Handshake) => { code: number; message: string } | undefined,
): Promise<Handshake> {
  const hello = expectFrame(connection, await nextFrame(connection, options.timeoutMs), "handshake");
  if (hello.protocol !== PROTOCOL_ID || hello.version !== PROTOCOL_VERSION) {
    fail(connection, WIRE_ERROR.PROTOCOL, `unsupported protocol ${hello.protocol} v${hello.version}`);
  }
  const problem = check(hello);
  if (problem) fail(connection, problem.code, problem.message);
  if (sameId(hello.peerId, options.peerId)) fail(connection, WIRE_ERROR.UNAUTHORIZED, "the peer claims this agent's own peer id");
  if (options.key && hello.auth.length !== NONCE_BYTES) fail(connection, WIRE_ERROR.UNAUTHORIZED, "this peer port needs cluster authentication");
  if (!options.key && hello.auth.length > 0) fail(connection, WIRE_ERROR.UNAUTHORIZED, "this agent has no cluster secret");
  const reply: Handshake = {
    type: "handshake",
    version: PROTOCOL_VERSION,
    protocol: PROTOCOL_ID,
    digest: hello.digest,
    peerId: options.peerId,
    pieceCount: hello.pieceCount,
    bitfield: new Uint8Array(hello.bitfield.length),
    auth: new Uint8Array(0),
  };
  if (!options.key) {
    await connection.send(reply);
    return hello;
  }
  const transcript: Transcript = {
    digest: hello.digest,
    initiatorNonce: hello.auth,
    responderNonce: newNonce(),
    initiatorId: hello.peerId,
    responderId: options.peerId,
    // The address this connection reached us at: what an honest initiator dialled.
    responderEndpoint: endpoint(connection.socket.localAddress, connection.socket.localPort),
  };
  const auth = new Uint8Array(NONCE_BYTES * 2);
  auth.set(transcript.responderNonce, 0);
  auth.set(proof(options.key, "responder", transcript), NONCE_BYTES);
  await connection.send({ ...reply, auth });
  const answer = expectFrame(connection, await nextFrame(connection, options.timeoutMs), "auth");
  if (!verifyProof(options.key, "initiator", transcript, answer.proof)) fail(connection, WIRE_ERROR.UNAUTHORIZED, "bad cluster credentials, or a proof relayed from another connection");
  return hello;
}

function sameId(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function expectFrame<T extends Frame["type"]>(connection: PeerConnection, frame: Frame, type: T): Extract<Frame, { type: T }> {
  if (frame.type === type) return frame as Extract<Frame, { type: T }>;
  if (frame.type === "error") {
    const error = new WireError(`peer refused: ${frame.message} (code ${frame.code})`);
    connection.close(error);
    throw error;
  }
  fail(connection, WIRE_ERROR.PROTOCOL, `expected ${type}, got ${frame.type}`);
}

function fail(connection: PeerConnection, code: number, message: string): never {
  connection.refuse(code, message);
  throw new WireError(message);
}
