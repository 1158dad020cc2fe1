// Worker-thread entry point of WorkerFitter (arima-fit.ts): answers fit requests with fitForecast.
//
// Plain JavaScript on purpose: in Node 20 a worker thread does not get the ESM loader hooks of the
// process (`node --import tsx`), not even with `execArgv: ['--import', 'tsx']` (nodejs/node#47747),
// so a `.ts` entry point fails with ERR_UNKNOWN_FILE_EXTENSION. This file registers tsx in the
// worker itself, then loads the TypeScript module; all the logic stays in arima-fit.ts.
import { register } from 'tsx/esm/api';

register();
const { serveFits } = await import('./arima-fit.ts');
serveFits();
