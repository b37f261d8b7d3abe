-- wrk script: poll /dashboard/data as the page does, asking only for the samples after the
-- newest one but one it saw (so each answer carries one sample and the route table).
local since = nil

request = function()
  local path = "/dashboard/data"
  if since then path = path .. "?since=" .. since end
  return wrk.format("GET", path)
end

response = function(status, headers, body)
  local last = body:match('"last":(%d+)')
  if last then since = math.max(tonumber(last) - 1, 0) end
end
