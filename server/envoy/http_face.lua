-- The JSON face's own rules, run by Envoy's Lua filter around the gRPC-JSON
-- transcoder (envoy.yaml). `model-registry serve` prepends `local CONFIG = {...}`,
-- made in Python from the proto contract (lua.py): each HTTP route's body and
-- reply message, every message's fields, and every user-facing text. This
-- file decides HTTP statuses and writes no message of its own.
--
-- Request:  the body is parsed as JSON and checked against the route's body
--           message, so that a malformed body is a 400 that speaks the user's
--           JSON (field paths as sent, line and column), not the transcoder's.
-- Response: a gRPC error (a google.rpc.Status JSON body, made by the
--           transcoder) becomes the mapped HTTP status and {"detail": message};
--           a reply message gets int64 fields as JSON numbers and unset
--           optional fields as null, as the API has them.
-- grpc-* headers and trailers never reach the client.

local byte, sub, find, format = string.byte, string.sub, string.find, string.format
local concat = table.concat

local M = {}

-- gRPC code -> HTTP status. The API answers refusals with 401 and a taken id
-- with 400; otherwise the usual mapping.
M.HTTP_STATUS = {
  [0] = 200, [1] = 499, [2] = 500, [3] = 400, [4] = 504, [5] = 404, [6] = 400,
  [7] = 401, [8] = 429, [9] = 400, [10] = 409, [11] = 400, [12] = 501, [13] = 500,
  [14] = 503, [15] = 500, [16] = 401,
}
-- Codes whose message may come from gRPC itself rather than from the server's
-- error mapping: the client gets CONFIG.text.internal instead.
local OPAQUE = {[2] = true, [13] = true, [15] = true}
-- The detail when a message is empty.
local REASON = {[400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
  [409] = "Conflict", [429] = "Too Many Requests", [499] = "Client Closed Request",
  [500] = "Internal Server Error", [501] = "Not Implemented", [503] = "Service Unavailable",
  [504] = "Gateway Timeout"}

-- JSON --------------------------------------------------------------------

-- A parsed value is a node: {t = "object"|"array"|"string"|"number"|"true"|
-- "false"|"null", s = first byte, e = last byte}; objects have `keys` (in order)
-- and `map` (key -> node), arrays `items`, strings and numbers `v`.

local ESCAPES = {[34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
  [110] = "\n", [114] = "\r", [116] = "\t"}

local Parser = {}
Parser.__index = Parser

local function fail(reason, at) error({reason = reason, at = at}, 0) end

local function skip_space(text, i)
  local c = byte(text, i)
  if c ~= 32 and c ~= 9 and c ~= 10 and c ~= 13 then return c and i or #text + 1 end
  return find(text, "[^ \t\r\n]", i) or #text + 1
end

-- The code point of the UTF-8 sequence at i and the index after it; fails
-- on anything that is not well-formed UTF-8.
local function utf8_at(text, i)
  local c = byte(text, i)
  local n, min, cp
  if c < 0x80 then return c, i + 1
  elseif c >= 0xC2 and c <= 0xDF then n, min, cp = 1, 0x80, c - 0xC0
  elseif c >= 0xE0 and c <= 0xEF then n, min, cp = 2, 0x800, c - 0xE0
  elseif c >= 0xF0 and c <= 0xF4 then n, min, cp = 3, 0x10000, c - 0xF0
  else fail("invalid_utf8", i) end
  for k = 1, n do
    local cc = byte(text, i + k)
    if cc == nil or cc < 0x80 or cc > 0xBF then fail("invalid_utf8", i) end
    cp = cp * 64 + (cc - 0x80)
  end
  if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then
    fail("invalid_utf8", i)
  end
  return cp, i + n + 1
end

local function utf8_char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
      0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
    0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

function Parser:string(i)
  -- i is at the opening quote
  local text, parts, j = self.text, {}, i + 1
  while true do
    local k = find(text, '[%z\1-\31"\\\128-\255]', j)
    if k == nil then fail("unterminated_string", #text + 1) end
    if k > j then parts[#parts + 1] = sub(text, j, k - 1) end
    local c = byte(text, k)
    if c == 34 then
      return {t = "string", s = i, e = k, v = concat(parts)}, k + 1
    elseif c == 92 then
      local d = byte(text, k + 1)
      if d == 117 then -- \uXXXX, maybe a surrogate pair
        local hex = sub(text, k + 2, k + 5)
        if not find(hex, "^%x%x%x%x$") then fail("invalid_escape", k) end
        local cp = tonumber(hex, 16)
        j = k + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local low = find(text, "^\\u[dD][c-fC-F]%x%x", j) and tonumber(sub(text, j + 2, j + 5), 16)
          if not low then fail("invalid_escape", k) end
          cp = 0x10000 + (cp - 0xD800) * 1024 + (low - 0xDC00)
          j = j + 6
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          fail("invalid_escape", k)
        end
        parts[#parts + 1] = utf8_char(cp)
      elseif d ~= nil and ESCAPES[d] then
        parts[#parts + 1] = ESCAPES[d]
        j = k + 2
      else
        fail("invalid_escape", k)
      end
    elseif c < 32 then
      fail("control_character", k)
    else
      local _, after = utf8_at(text, k)
      parts[#parts + 1] = sub(text, k, after - 1)
      j = after
    end
  end
end

function Parser:number(i)
  local text = self.text
  local s, e = find(text, "^-?%d+", i)
  if s == nil then fail("unexpected_character", i) end
  if find(text, "^-?0%d", i) then fail("invalid_number", i) end
  local f = select(2, find(text, "^%.%d+", e + 1))
  if f then e = f elseif byte(text, e + 1) == 46 then fail("invalid_number", e + 1) end
  local x = select(2, find(text, "^[eE][+-]?%d+", e + 1))
  if x then e = x elseif find(text, "^[eE]", e + 1) then fail("invalid_number", e + 1) end
  local raw = sub(text, i, e)
  return {t = "number", s = i, e = e, v = tonumber(raw), raw = raw}, e + 1
end

function Parser:value(i, depth)
  local text = self.text
  i = skip_space(text, i)
  local c = byte(text, i)
  if c == nil then fail("unexpected_end", i) end
  if c == 123 or c == 91 then
    if depth >= self.max_depth then fail("too_deep", i) end
    if c == 123 then return self:object(i, depth + 1) end
    return self:array(i, depth + 1)
  elseif c == 34 then return self:string(i)
  elseif c == 45 or (c >= 48 and c <= 57) then return self:number(i)
  end
  for _, word in ipairs({"true", "false", "null"}) do
    if sub(text, i, i + #word - 1) == word then
      return {t = word, s = i, e = i + #word - 1}, i + #word
    end
  end
  if c >= 128 then utf8_at(text, i) end -- a broken sequence is reported as such
  fail("unexpected_character", i)
end

function Parser:object(i, depth)
  local text = self.text
  local node = {t = "object", s = i, keys = {}, map = {}}
  self.path[depth] = nil
  i = skip_space(text, i + 1)
  if byte(text, i) == 125 then node.e = i; return node, i + 1 end
  while true do
    if byte(text, i) ~= 34 then
      fail(byte(text, i) == nil and "unexpected_end" or "expected_key", i)
    end
    local key
    key, i = self:string(i)
    i = skip_space(text, i)
    if byte(text, i) ~= 58 then
      fail(byte(text, i) == nil and "unexpected_end" or "expected_colon", i)
    end
    self.path[depth] = key.v
    local value
    value, i = self:value(i + 1, depth)
    if node.map[key.v] == nil then node.keys[#node.keys + 1] = key.v end
    node.map[key.v] = value -- the last of duplicate keys wins, as in the transcoder
    value.key_s = key.s
    i = skip_space(text, i)
    local c = byte(text, i)
    if c == 125 then node.e = i; return node, i + 1 end
    if c ~= 44 then fail(c == nil and "unexpected_end" or "expected_comma_or_brace", i) end
    i = skip_space(text, i + 1)
  end
end

function Parser:array(i, depth)
  local text = self.text
  local node = {t = "array", s = i, items = {}}
  self.path[depth] = nil
  i = skip_space(text, i + 1)
  if byte(text, i) == 93 then node.e = i; return node, i + 1 end
  while true do
    local value
    value, i = self:value(i, depth)
    node.items[#node.items + 1] = value
    i = skip_space(text, i)
    local c = byte(text, i)
    if c == 93 then node.e = i; return node, i + 1 end
    if c ~= 44 then fail(c == nil and "unexpected_end" or "expected_comma_or_bracket", i) end
    i = i + 1
  end
end

-- The line and column (in characters) of byte i.
local function line_and_column(text, i)
  local line, start = 1, 1
  while true do
    local n = find(text, "\n", start, true)
    if n == nil or n >= i then break end
    line, start = line + 1, n + 1
  end
  local column = 1
  for k = start, i - 1 do
    local c = byte(text, k)
    if c < 0x80 or c > 0xBF then column = column + 1 end
  end
  return line, column
end

-- parse(text, max_depth) -> node | nil, problem: {reason, line, column, key}
-- where key is the top-level key under which the problem lies (if any).
function M.parse(text, max_depth)
  local parser = setmetatable({text = text, max_depth = max_depth or 64, path = {}}, Parser)
  local ok, result = pcall(function()
    local node, i = parser:value(1, 0)
    i = skip_space(text, i)
    if i <= #text then fail("trailing_characters", i) end
    return node
  end)
  if ok then return result end
  if type(result) ~= "table" then error(result, 0) end
  local line, column = line_and_column(text, math.min(result.at, #text + 1))
  return nil, {reason = result.reason, line = line, column = column, key = parser.path[1]}
end

-- A JSON string literal for `s` (valid UTF-8): quotes, backslashes and
-- control characters escaped.
function M.quote(s)
  return '"' .. s:gsub('[%z\1-\31"\\\127]', function(c)
    local b = byte(c)
    if b == 34 then return '\\"' elseif b == 92 then return "\\\\" end
    return format("\\u%04x", b)
  end) .. '"'
end

-- Requests ----------------------------------------------------------------

local function fill(template, values)
  return (template:gsub("{(%w+)}", function(name) return values[name] or "" end))
end

local function field_path(parent, name)
  if parent == "" then return name end
  return parent .. "." .. name
end

-- An integer that fits in an int64, written in decimal digits (doubles
-- cannot tell 2^63 - 1 from 2^63, so the digits are compared).
local function is_int64(digits)
  local magnitude = digits:match("^%-?(%d+)$")
  if magnitude == nil then return false end
  magnitude = magnitude:gsub("^0+(%d)", "%1")
  local limit = digits:sub(1, 1) == "-" and "9223372036854775808" or "9223372036854775807"
  return #magnitude < #limit or (#magnitude == #limit and magnitude <= limit)
end

local function kind_ok(kind, node)
  local t = node.t
  if kind == "string" or kind == "bytes" then return t == "string"
  elseif kind == "bool" then return t == "true" or t == "false"
  elseif kind == "int" then
    return (t == "number" and is_int64(node.raw)) or (t == "string" and is_int64(node.v))
  elseif kind == "int32" then
    local digits = (t == "number" and node.raw) or (t == "string" and node.v) or ""
    local n = digits:match("^%-?%d+$") and #digits <= 11 and tonumber(digits)
    return n ~= nil and n ~= false and n >= -2147483648 and n <= 2147483647
  elseif kind == "number" then
    return t == "number" or (t == "string" and (node.v == "NaN" or node.v == "Infinity"
      or node.v == "-Infinity" or tonumber(node.v) ~= nil))
  elseif kind == "enum" then return t == "string" or t == "number"
  elseif kind == "message" or kind == "struct" then return t == "object"
  elseif kind == "list" then return t == "array"
  end
  return true -- "value": any JSON
end

-- True when a number anywhere under `node` is outside a double's range.
local function has_infinite_number(node)
  if node.t == "number" then return node.v == math.huge or node.v == -math.huge end
  if node.t == "object" then
    for _, key in ipairs(node.keys) do
      if has_infinite_number(node.map[key]) then return true end
    end
  elseif node.t == "array" then
    for _, item in ipairs(node.items) do
      if has_infinite_number(item) then return true end
    end
  end
  return false
end

-- The first problem of `node` as message `name`, as a detail; nil if none.
local function check_message(config, name, node, path)
  local fields = config.messages[name].fields
  local grpc_only = path == "" and config.grpc_only[name] or {}
  for _, key in ipairs(node.keys) do
    if key == "" then -- the transcoder cannot read a field without a name
      return fill(config.text.empty_key, {field = path == "" and config.text.body or path})
    end
    local field = fields[key]
    local value = node.map[key]
    if grpc_only[key] then return fill(config.text.grpc_only, {field = field.name}) end
    if field ~= nil and value.t ~= "null" then
      local where = field_path(path, field.name)
      local problem
      if field.repeated then
        if value.t ~= "array" then
          return fill(config.text.wrong_type, {field = where, expected = config.text.kinds.array})
        end
        for index, item in ipairs(value.items) do
          problem = M.check_value(config, field, item, format("%s[%d]", where, index - 1))
          if problem then return problem end
        end
      else
        problem = M.check_value(config, field, value, where)
        if problem then return problem end
      end
    end
  end
  return nil
end

function M.check_value(config, field, node, where)
  if not kind_ok(field.kind, node) then
    return fill(config.text.wrong_type, {field = where, expected = config.text.kinds[field.kind]})
  end
  if field.kind == "message" then return check_message(config, field.message, node, where) end
  if (field.kind == "struct" or field.kind == "list" or field.kind == "value")
      and has_infinite_number(node) then
    return fill(config.text.number_out_of_range, {field = where})
  end
  return nil
end

local function url_decode(text)
  text = text:gsub("+", " ")
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- A query parameter's value as the JSON value the transcoder reads it as.
local function query_value(kind, text)
  if kind == "int" or kind == "int32" then
    return {t = "number", raw = text, v = tonumber(text)}
  elseif kind == "bool" then
    if text == "true" then return {t = "true"} elseif text == "false" then return {t = "false"} end
    return {t = "string", v = text}
  end
  return {t = "string", v = text}
end

-- The detail of a 400 for this query string, or nil. Parameters that name a
-- scalar field of the route's request message are checked as the transcoder
-- reads them; every other parameter is left to it (unknown ones it ignores).
function M.check_query(config, message_name, query)
  local fields = config.messages[message_name].fields
  local grpc_only = config.grpc_only[message_name] or {}
  for pair in query:gmatch("[^&]+") do
    local key, value = pair:match("^([^=]*)=?(.*)$")
    local field = fields[url_decode(key)]
    if grpc_only[url_decode(key)] then
      return fill(config.text.grpc_only, {field = field.name})
    end
    if field ~= nil and not field.repeated and field.kind ~= "message" then
      local text = url_decode(value)
      if not kind_ok(field.kind, query_value(field.kind, text)) then
        return fill(config.text.wrong_type, {field = field.name, expected = config.text.kinds[field.kind]})
      end
    end
  end
  return nil
end

-- The detail of a 400 for this request body, or nil when the transcoder may
-- have it. `body_message` is the route's body message.
function M.check_request(config, body_message, text)
  if #text == 0 then return nil end -- no body: every field unset
  local node, problem = M.parse(text, config.max_depth)
  if node == nil then
    if problem.reason == "too_deep" then
      if problem.key ~= nil and config.messages[body_message].fields[problem.key] then
        local name = config.messages[body_message].fields[problem.key].name
        return fill(config.text.too_deep, {field = name})
      end
      return config.text.body_too_deep
    end
    return fill(config.text.invalid_json, {
      reason = config.text.json_errors[problem.reason],
      line = tostring(problem.line),
      column = tostring(problem.column),
    })
  end
  if node.t ~= "object" then return config.text.body_not_object end
  return check_message(config, body_message, node, "")
end

-- Responses ---------------------------------------------------------------

-- Edits that make a reply of message `name` read as the API: int64 strings
-- become numbers; an unset optional field is written as null after the
-- field that precedes it.
local function collect_edits(config, name, node, edits)
  local message = config.messages[name]
  local previous_end = node.s -- insert after "{" when nothing precedes
  local wrote_any = false
  for _, field in ipairs(message.order) do
    local value = node.map[field.name]
    if value ~= nil then
      if field.kind == "int" and value.t == "string" then
        edits[#edits + 1] = {value.s, value.e, value.v}
      elseif field.kind == "message" and value.t == "object" then
        collect_edits(config, field.message, value, edits)
      elseif field.kind == "message" and field.repeated and value.t == "array" then
        for _, item in ipairs(value.items) do
          if item.t == "object" then collect_edits(config, field.message, item, edits) end
        end
      elseif field.kind == "int" and field.repeated and value.t == "array" then
        for _, item in ipairs(value.items) do
          if item.t == "string" then edits[#edits + 1] = {item.s, item.e, item.v} end
        end
      end
      previous_end, wrote_any = value.e, true
    elseif field.null_when_unset then
      local text = M.quote(field.name) .. ":null"
      if wrote_any then
        edits[#edits + 1] = {previous_end + 1, previous_end, "," .. text}
      else
        local rest_empty = #node.keys == 0
        edits[#edits + 1] = {previous_end + 1, previous_end, rest_empty and text or text .. ","}
      end
      wrote_any = true
    end
  end
end

-- Replies are read by a scan, not M.parse: they come from the transcoder, so
-- they are well-formed JSON, and the edits concern only a message's own
-- fields. Their nodes are made for the fields of messages (keys, positions,
-- and the value of strings of int fields, which are digits); every other
-- value (a Struct's contents, a string) is skipped, never decoded. Returns
-- nil on what is not JSON it can scan. The skips are byte loops, not
-- string.find: LuaJIT compiles them, and a pattern search is a call out of
-- compiled code each time.
local function skip_string(text, i) -- i at the opening quote; the index after the closing one
  local j, n = i + 1, #text
  while j <= n do
    local c = byte(text, j)
    if c == 34 then return j + 1 end
    j = c == 92 and j + 2 or j + 1 -- a backslash: past the escaped character
  end
  return nil
end

local function skip_value(text, i) -- the index after the value at i
  local c, n = byte(text, i), #text
  if c == 34 then return skip_string(text, i) end
  if c == 123 or c == 91 then
    local depth, j = 0, i
    while j <= n do
      local d = byte(text, j)
      if d == 34 then
        j = skip_string(text, j)
        if j == nil then return nil end
      else
        if d == 123 or d == 91 then
          depth = depth + 1
        elseif d == 125 or d == 93 then
          depth = depth - 1
          if depth == 0 then return j + 1 end
        end
        j = j + 1
      end
    end
    return nil
  end
  local j = i -- a number, true, false or null: up to what ends it
  while j <= n do
    local d = byte(text, j)
    if d == 44 or d == 125 or d == 93 or d == 32 or d == 9 or d == 10 or d == 13 then return j end
    j = j + 1
  end
  return j
end

local TYPES = {[34] = "string", [123] = "object", [91] = "array", [116] = "true",
  [102] = "false", [110] = "null"}

local INT = {kind = "int"}
local scan_object, scan_value

-- The array at i, each item scanned as a value of the field `each`.
local function scan_array(config, each, text, i)
  local node = {t = "array", s = i, items = {}}
  i = skip_space(text, i + 1)
  if byte(text, i) == 93 then node.e = i; return node, i + 1 end
  while true do
    local item
    item, i = scan_value(config, each, text, i)
    if item == nil then return nil end
    node.items[#node.items + 1] = item
    i = skip_space(text, i)
    local d = byte(text, i)
    if d == 93 then node.e = i; return node, i + 1 end
    if d ~= 44 then return nil end
    i = skip_space(text, i + 1)
  end
end

-- The node of the value at i (a field of `field`'s kind, or anything when
-- field is nil), and the index after it.
scan_value = function(config, field, text, i)
  local c = byte(text, i)
  if field ~= nil and field.kind == "message" then
    if c == 123 then return scan_object(config, field.message, text, i) end
    if c == 91 and field.repeated then
      return scan_array(config, {kind = "message", message = field.message}, text, i)
    end
  elseif field ~= nil and field.kind == "int" and c == 91 and field.repeated then
    return scan_array(config, INT, text, i)
  end
  local after = skip_value(text, i)
  if after == nil then return nil end
  local node = {t = TYPES[c] or "number", s = i, e = after - 1}
  if c == 34 and field ~= nil and field.kind == "int" then node.v = sub(text, i + 1, after - 2) end
  return node, after
end

scan_object = function(config, name, text, i)
  local message = config.messages[name]
  local node = {t = "object", s = i, keys = {}, map = {}}
  i = skip_space(text, i + 1)
  if byte(text, i) == 125 then node.e = i; return node, i + 1 end
  while true do
    if byte(text, i) ~= 34 then return nil end
    local after_key = skip_string(text, i)
    if after_key == nil then return nil end
    local key = sub(text, i + 1, after_key - 2) -- field names hold no escapes
    i = skip_space(text, after_key)
    if byte(text, i) ~= 58 then return nil end
    local value
    value, i = scan_value(config, message and message.fields[key], text, skip_space(text, i + 1))
    if value == nil then return nil end
    if node.map[key] == nil then node.keys[#node.keys + 1] = key end
    node.map[key] = value
    i = skip_space(text, i)
    local c = byte(text, i)
    if c == 125 then node.e = i; return node, i + 1 end
    if c ~= 44 then return nil end
    i = skip_space(text, i + 1)
  end
end

-- The node of a reply of message `name`, or nil.
function M.scan_reply(config, name, text)
  local i = skip_space(text, 1)
  if byte(text, i) ~= 123 then return nil end
  local node, after = scan_object(config, name, text, i)
  if node == nil or skip_space(text, after) <= #text then return nil end
  return node
end

-- The reply with the edits of collect_edits made. Nil if it cannot be scanned.
function M.edited_reply(config, name, text)
  local node = M.scan_reply(config, name, text)
  if node == nil or node.t ~= "object" then return nil end
  local edits = {}
  collect_edits(config, name, node, edits)
  if #edits == 0 then return text end
  for index, edit in ipairs(edits) do edit[4] = index end
  -- by position; edits at one position in the order they were made
  table.sort(edits, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[4] < b[4]) end)
  local parts, at = {}, 1
  for _, edit in ipairs(edits) do
    parts[#parts + 1] = sub(text, at, edit[1] - 1)
    parts[#parts + 1] = edit[3]
    at = edit[2] + 1
  end
  parts[#parts + 1] = sub(text, at)
  return concat(parts)
end

-- Replies in one pass. The transcoder writes a message's fields in their
-- order, so the edits can be written while the reply is scanned, with no
-- node made: the text is copied through, an int64 string is written without
-- its quotes, and an unset optional field's null goes in where the field
-- would have been (which is where collect_edits puts it: after the field
-- before it). A reply whose keys are not in their fields' order, or that
-- has a key its message does not, gives nil here and goes the way of
-- M.edited_reply. `w`: {text, out = parts written, at = the first byte of
-- text not yet copied into out}.
local function copy_until(w, i)
  if i > w.at then w.out[#w.out + 1] = sub(w.text, w.at, i - 1) end
  w.at = i
end

local function unquote_at(w, i) -- the int64 string at i, written as a number
  local after = skip_string(w.text, i)
  if after == nil then return nil end
  copy_until(w, i)
  w.out[#w.out + 1] = sub(w.text, i + 1, after - 2)
  w.at = after
  return after
end

local write_object

local function write_array(config, field, w, i)
  local text = w.text
  local of_messages = field.kind == "message"
  i = skip_space(text, i + 1)
  if byte(text, i) == 93 then return i + 1 end
  while true do
    local c = byte(text, i)
    if of_messages and c == 123 then
      i = write_object(config, field.message, w, i)
    elseif not of_messages and c == 34 then
      i = unquote_at(w, i)
    else
      i = skip_value(text, i)
    end
    if i == nil then return nil end
    i = skip_space(text, i)
    local d = byte(text, i)
    if d == 93 then return i + 1 end
    if d ~= 44 then return nil end
    i = skip_space(text, i + 1)
  end
end

local function write_value(config, field, w, i)
  local c = byte(w.text, i)
  if field.kind == "message" then
    if c == 123 then return write_object(config, field.message, w, i) end
    if c == 91 and field.repeated then return write_array(config, field, w, i) end
  elseif field.kind == "int" then
    if c == 34 then return unquote_at(w, i) end
    if c == 91 and field.repeated then return write_array(config, field, w, i) end
  end
  return skip_value(w.text, i)
end

write_object = function(config, name, w, i)
  local text = w.text
  local message = config.messages[name]
  if message == nil then return nil end
  local order, fields = message.order, message.fields
  local next_position, wrote_any = 1, false
  i = skip_space(text, i + 1)
  if byte(text, i) ~= 125 then
    while true do
      if byte(text, i) ~= 34 then return nil end
      local after_key = skip_string(text, i)
      if after_key == nil then return nil end
      local field = fields[sub(text, i + 1, after_key - 2)]
      if field == nil or field.position < next_position then return nil end
      for k = next_position, field.position - 1 do -- the unset fields before it
        if order[k].null_when_unset then
          copy_until(w, i)
          w.out[#w.out + 1] = M.quote(order[k].name) .. ":null,"
        end
      end
      next_position, wrote_any = field.position + 1, true
      i = skip_space(text, after_key)
      if byte(text, i) ~= 58 then return nil end
      i = write_value(config, field, w, skip_space(text, i + 1))
      if i == nil then return nil end
      i = skip_space(text, i)
      local c = byte(text, i)
      if c == 125 then break end
      if c ~= 44 then return nil end
      i = skip_space(text, i + 1)
    end
  end
  for k = next_position, #order do -- the unset fields after the last one written
    if order[k].null_when_unset then
      copy_until(w, i)
      local null = M.quote(order[k].name) .. ":null"
      w.out[#w.out + 1] = wrote_any and "," .. null or null
      wrote_any = true
    end
  end
  return i + 1
end

function M.written_reply(config, name, text)
  local i = skip_space(text, 1)
  if byte(text, i) ~= 123 then return nil end
  local w = {text = text, out = {}, at = 1}
  local after = write_object(config, name, w, i)
  if after == nil or skip_space(text, after) <= #text then return nil end
  copy_until(w, #text + 1)
  return concat(w.out)
end

-- The reply body as the API writes it (or the body unchanged if it is not
-- a `name` message). With `unwrap`, only that field of it: an array, empty
-- when the transcoder left the field out.
function M.finish_reply(config, name, text, unwrap)
  local finished = M.written_reply(config, name, text) or M.edited_reply(config, name, text)
  if finished == nil then return text end
  if unwrap == nil then return finished end
  local node = M.scan_reply(config, name, finished)
  if node == nil then return "[]" end
  local field = node.map[unwrap]
  if field == nil then return "[]" end
  return sub(finished, field.s, field.e)
end

-- The HTTP status and {"detail": ...} body for a google.rpc.Status JSON body;
-- nil if `text` is not one.
function M.error_reply(config, text)
  local node = M.parse(text, 1000)
  if node == nil or node.t ~= "object" then return nil end
  local code, message = node.map.code, node.map.message
  if code == nil or code.t ~= "number" then return nil end
  local status = M.HTTP_STATUS[code.v] or 500
  local detail = message ~= nil and message.t == "string" and message.v or ""
  if OPAQUE[code.v] then detail = config.text.internal end
  if detail == "" then detail = REASON[status] or "Error" end
  return status, '{"detail":' .. M.quote(detail) .. "}"
end

-- Envoy -------------------------------------------------------------------

local function route_of(config, method, path)
  path = path:match("^[^?]*")
  local exact = config.routes[method .. " " .. path]
  if exact then return exact end
  for _, route in ipairs(config.route_patterns) do
    if route.method == method and find(path, route.pattern) then return route end
  end
  return nil
end

local function strip_grpc(map)
  local drop = {}
  for key, _ in pairs(map) do
    if key:sub(1, 5) == "grpc-" then drop[#drop + 1] = key end
  end
  for _, key in ipairs(drop) do map:remove(key) end
end

local META = "modelregistry.http_face"

function M.on_request(config, handle)
  local headers = handle:headers()
  local route = route_of(config, headers:get(":method") or "", headers:get(":path") or "")
  if route == nil then return end
  if route.reply ~= nil then
    handle:streamInfo():dynamicMetadata():set(META, "reply", route.reply)
  end
  if route.unwrap ~= nil then
    handle:streamInfo():dynamicMetadata():set(META, "unwrap", route.unwrap)
  end
  local query = (headers:get(":path") or ""):match("%?(.*)$")
  if query ~= nil and query ~= "" then
    local detail = M.check_query(config, route.request, query)
    if detail ~= nil then
      handle:respond({[":status"] = "400"}, detail)
      return
    end
  end
  if route.body == nil then return end
  local body = handle:body()
  if body == nil then return end
  local detail = M.check_request(config, route.body, body:getBytes(0, body:length()))
  if detail ~= nil then
    -- local_reply_config writes it as {"detail": ...}
    handle:respond({[":status"] = "400"}, detail)
  end
end

function M.on_response(config, handle)
  local status = handle:headers():get(":status")
  local meta = handle:streamInfo():dynamicMetadata():get(META) or {}
  if status == "200" and meta.reply == nil then
    -- Nothing to finish (the server wrote the JSON, or no route of ours):
    -- the body streams through, never copied into Lua.
    strip_grpc(handle:headers())
    local trailers = handle:trailers()
    if trailers ~= nil then strip_grpc(trailers) end
    return
  end
  local body = handle:body() -- the whole (already buffered) body
  local headers = handle:headers() -- after body(): one taken before goes stale
  strip_grpc(headers)
  if body ~= nil then
    local n = body:length()
    local text = body:getBytes(0, n)
    local grpc_error = (headers:get("content-type") or ""):find("^application/json") and
      find(text, '^{"code":')
    if status == "200" then
      local finished = M.finish_reply(config, meta.reply, text, meta.unwrap)
      if finished ~= text then body:setBytes(finished) end
    elseif grpc_error then
      local http_status, detail = M.error_reply(config, text)
      if http_status ~= nil then
        headers:replace(":status", tostring(http_status))
        body:setBytes(detail)
      end
    elseif n > 0 and sub(text, n) == "\n" then
      body:setBytes(sub(text, 1, n - 1)) -- local_reply_config's json_format adds it
    end
  end
  local trailers = handle:trailers() -- last: nothing else can change after it
  if trailers ~= nil then strip_grpc(trailers) end
end

function envoy_on_request(handle) -- luacheck: ignore (Envoy's entry point)
  M.on_request(CONFIG, handle)
end

function envoy_on_response(handle) -- luacheck: ignore
  M.on_response(CONFIG, handle)
end

return M
