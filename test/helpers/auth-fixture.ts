/**
 * The accounts the auth end-to-end tests run with (`SHOAL_AUTH`): alice may do anything, the robot
 * pull and push under `team/`, and anyone pull `public/`.
 */
export const ALICE = "alice-secret-0123456789abcdef";
export const ROBOT = "robot-secret-0123456789abcdef";
export const AUTH_SETTING = {
  users: {
    alice: { password: ALICE, access: [{ repository: "*", actions: ["pull", "push", "delete"] }] },
    robot: { password: ROBOT, access: [{ repository: "team/*", actions: ["pull", "push"] }] },
  },
  anonymous: [{ repository: "public/*", actions: ["pull"] }],
};

export const basic = (userAndSecret: string) => `Basic ${Buffer.from(userAndSecret).toString("base64")}`;

/** What a client command that must fail printed (its stderr); throws if it succeeded. */
export async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  }
  throw new Error("expected the command to fail");
}
