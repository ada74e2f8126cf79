// Where the gateway is: the page may load before the gateway's ready line, so listen for
// `gateway-ready` AND ask `gateway_info` (the event may have fired before the listener
// existed), until one of them has a URL.
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitForGateway(timeoutMs = 60000) {
  let announced = null;
  const unlisten = await listen('gateway-ready', (event) => { announced = event.payload; });
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const info = announced ?? (await invoke('gateway_info'));
      if (info.url) return info;
      if (info.last_error) throw new Error(info.last_error);
      await sleep(250);
    }
    throw new Error('the AI gateway did not start');
  } finally {
    unlisten();
  }
}
