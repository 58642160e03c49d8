// After tsc: the files the compiled broker reads at run time, next to it in dist/.
import { cpSync, existsSync } from 'node:fs';
cpSync('server/store/lua', 'dist/server/store/lua', { recursive: true });
cpSync('config', 'dist/config', { recursive: true });
if (existsSync('client/dist')) cpSync('client/dist', 'dist/client/dist', { recursive: true });
