// watch.mjs: opens a Pulse live socket and prints its frames, one JSON object per line.
//
//   node scripts/watch.mjs 'ws://127.0.0.1:8080/api/v1/ws?ticket=...' [notifications] [seconds]
//
// Prints every frame it receives on stdout as it arrives (`hello` first), and exits 0 as soon
// as it has received `notifications` notification frames (default 1). Exits 1 when the socket
// closes or fails first, or after `seconds` (default 30) without them. Messages go to stderr.
//
// It uses the WebSocket built into Node.js: Node >= 22 has it by default, Node 20 with
// `node --experimental-websocket` (scripts/try-it.sh picks the right command). No npm package.

const [url, wantArg = "1", secondsArg = "30"] = process.argv.slice(2);
const want = Number(wantArg);
const seconds = Number(secondsArg);

function fail(message, code = 1) {
  process.stderr.write(`watch.mjs: ${message}\n`);
  process.exit(code);
}

if (!url || !/^wss?:\/\//.test(url) || !(want >= 1) || !(seconds > 0)) {
  fail("usage: node scripts/watch.mjs <ws://...|wss://...> [notifications] [seconds]", 2);
}
if (typeof WebSocket !== "function") {
  fail(
    `Node ${process.version} has no global WebSocket: use Node >= 22, ` +
      "or Node 20 with `node --experimental-websocket`",
    2,
  );
}

let received = 0;
const timer = setTimeout(
  () => fail(`no ${want} notification frame(s) within ${seconds} s (got ${received})`),
  seconds * 1000,
);

const socket = new WebSocket(url);
socket.addEventListener("message", (event) => {
  const text = typeof event.data === "string" ? event.data : String(event.data);
  process.stdout.write(`${text}\n`);
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    fail(`not a JSON frame: ${text}`);
  }
  if (frame.type === "notification") {
    received += 1;
    if (received >= want) {
      clearTimeout(timer);
      socket.close(1000);
      process.exitCode = 0;
    }
  }
});
socket.addEventListener("close", (event) => {
  if (received < want) {
    fail(`socket closed (code ${event.code}${event.reason ? `, ${event.reason}` : ""})`);
  }
  clearTimeout(timer);
});
socket.addEventListener("error", () => {
  // The close event that follows carries the code; an upgrade the server refused (401, 403,
  // 429) ends here with code 1006, since a WebSocket does not expose the HTTP answer.
  if (received < want) fail(`could not open or keep the socket at ${url.replace(/ticket=[^&]*/, "ticket=…")}`);
});
