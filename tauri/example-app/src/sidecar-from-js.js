// src/sidecar-from-js.js: the JavaScript route (this app uses the Rust one; the
// capability capabilities/sidecar-from-js.json goes with it). Needs @tauri-apps/plugin-shell.
import { Command } from '@tauri-apps/plugin-shell';

export async function startGateway(token, onReady) {
  // No --parent-pid: no Tauri JS API gives the app's pid. --watch-stdin covers it: the
  // app holds the gateway's stdin, and the pipe closes when the app dies.
  const command = Command.sidecar('binaries/gateway-example-ai', ['--port', '0', '--watch-stdin'], {
    env: { AI_GATEWAY_TOKEN: token },
  });
  command.stdout.on('data', (line) => {
    const msg = JSON.parse(line);
    if (msg.event === 'ready') onReady(msg);
  });
  command.stderr.on('data', () => {}); // read it: a full pipe would block the gateway
  const child = await command.spawn();
  return {
    // graceful: the gateway drains in-flight streams, then exits 0
    stop: () => child.write('shutdown\n'),
  };
}
