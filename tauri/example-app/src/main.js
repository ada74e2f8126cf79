import { invoke } from '@tauri-apps/api/core';
import { chat } from './chat.js';
import { waitForGateway } from './gateway.js';

const status = document.getElementById('status');
const notice = document.getElementById('notice');
const form = document.getElementById('chat');
const answer = document.getElementById('answer');

function showPreviousExit(previous) {
  // null after a clean stop; else the last run died (crash, kill): say so quietly
  if (!previous) return;
  notice.style.display = 'block';
  notice.textContent = `The AI gateway restarted after a problem (${previous.reason}`
    + (previous.crash_file ? `; details in ${previous.crash_file})` : ')');
}

async function selfTest(info) {
  // CI mode: one chat through the offline echo model, then report and let the app quit
  const text = 'self test through echo';
  try {
    const got = await chat(info, 'echo', text);
    await invoke('self_test_done', { ok: got === text, detail: JSON.stringify(got) });
  } catch (err) {
    await invoke('self_test_done', { ok: false, detail: String(err) });
  }
}

async function main() {
  let info;
  try {
    info = await waitForGateway();
  } catch (err) {
    status.textContent = `The AI gateway is not available: ${err.message}`;
    if (await invoke('self_test_enabled')) await invoke('self_test_done', { ok: false, detail: String(err) });
    return;
  }
  status.textContent = `AI gateway ready at ${info.url}`;
  showPreviousExit(info.previous_exit);
  form.querySelector('button').disabled = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    answer.textContent = '';
    const data = new FormData(form);
    try {
      await chat(info, data.get('model'), data.get('message'), (delta) => { answer.textContent += delta; });
    } catch (err) {
      answer.textContent = `Error: ${err.message}`; // the SDK error carries the request id
    }
  });
  if (await invoke('self_test_enabled')) await selfTest(info);
}

main();
