-- wrk script: POST a RetailCRM-style form webhook ("orderId=N", N counting up per thread).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, "orderId=" .. n)
end
