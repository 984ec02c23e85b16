// k6 load test against a deployed Worker: the same mixed scenario as `make bench`, with the seed's targets
// as thresholds. Run: BASE_URL=https://preview.api.tattlehash.com API_KEY=thk_... CHALLENGE_ID=<uuid> \
//   k6 run --vus 100 --duration 60s bench/load-test.js
// One client is one IP and one user: raise the preview Worker's [[ratelimits]] simple.limit values in
// wrangler.toml for the run (or use many keys), or every request past the limit is a 429.
import http from "k6/http";
import { check } from "k6";

const BASE_URL = __ENV.BASE_URL;
const API_KEY = __ENV.API_KEY;
const CHALLENGE_ID = __ENV.CHALLENGE_ID;

export const options = {
  vus: 100,
  duration: "60s",
  thresholds: {
    http_req_duration: ["p(99)<200", "p(50)<50"], // seed target p99 < 200 ms; goal p99 <= 50 ms at the edge
    http_req_failed: ["rate<0.001"], // error rate < 0.1 %
    http_reqs: ["rate>1000"], // throughput > 1000 req/s
  },
};

const json = { "Content-Type": "application/json" };
const auth = { ...json, Authorization: `Bearer ${API_KEY}` };

export default function () {
  const pick = __ITER % 5;
  let response;
  if (pick === 0) {
    response = http.get(`${BASE_URL}/health`);
  } else if (pick === 1) {
    const body = JSON.stringify({ wallet_address: "0x00000000000000000000000000000000000000aa", chain_id: "eip155:1" });
    response = http.post(`${BASE_URL}/gatekeeper/v2/wallet/challenge`, body, { headers: json });
  } else if (pick === 2) {
    response = http.post(`${BASE_URL}/challenges`, JSON.stringify({ mode: "SOLO", title: "k6" }), { headers: auth });
  } else if (pick === 3) {
    response = http.get(`${BASE_URL}/challenges/${CHALLENGE_ID}`, { headers: auth });
  } else {
    response = http.get(`${BASE_URL}/challenges?limit=10`, { headers: auth });
  }
  check(response, { "status is 2xx": (r) => r.status >= 200 && r.status < 300 });
}
