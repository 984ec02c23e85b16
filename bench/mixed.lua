-- wrk script: the mixed scenario of `make bench` (health, wallet challenge, challenge create/read/list).
local token = os.getenv("BENCH_TOKEN")
local challenge_id = os.getenv("BENCH_CHALLENGE_ID")
local wallet_body = '{"wallet_address":"0x00000000000000000000000000000000000000aa","chain_id":"eip155:1"}'
local challenge_body = '{"mode":"SOLO","title":"bench"}'
local counter = 0

request = function()
  counter = counter + 1
  local kind = counter % 5
  local auth = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
  if kind == 0 then
    return wrk.format("GET", "/health")
  elseif kind == 1 then
    return wrk.format("POST", "/gatekeeper/v2/wallet/challenge", { ["Content-Type"] = "application/json" }, wallet_body)
  elseif kind == 2 then
    return wrk.format("POST", "/challenges", auth, challenge_body)
  elseif kind == 3 then
    return wrk.format("GET", "/challenges/" .. challenge_id, auth)
  else
    return wrk.format("GET", "/challenges?limit=10", auth)
  end
end
