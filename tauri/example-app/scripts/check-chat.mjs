// Runs the page's chat module under Node against a real gateway:
//   node scripts/check-chat.mjs URL TOKEN TEXT
// prints the answer as JSON. Used by the repository's tests.
import { chat } from '../src/chat.js';

const [url, token, text] = process.argv.slice(2);
const answer = await chat({ url, token }, 'echo', text);
process.stdout.write(JSON.stringify({ answer }) + '\n');
