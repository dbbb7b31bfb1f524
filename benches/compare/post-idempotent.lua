-- wrk script for benches/ledger.sh's "fleet" mode: post.lua's request and
-- RESULT line, with a fresh Idempotency-Key on every request (so each is
-- a first request: a lease taken, the response sealed and stored).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "post.lua")

local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] =
    string.format("bench-%d-%d-%012d", os.time(), thread_id or 0, counter)
  return wrk.format(nil, nil, wrk.headers, wrk.body)
end
