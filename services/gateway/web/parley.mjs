// The Web SDK as an ES module: `import { MeetingController } from "https://gateway/sdk/parley.mjs"`.
// parley.js is a classic script that defines its classes on globalThis; importing it runs it once.
import "./parley.js";

export const MeetingController = globalThis.MeetingController;
export const VoipController = globalThis.VoipController;
export default MeetingController;
