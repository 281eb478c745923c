// callgrind_output.cpp: reads a callgrind output file's header, triggers and totals, strictly.
#include "run/callgrind_output.hpp"

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::run {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

bool event_name(std::string_view w) {
  if (w.empty() || w.size() > 16) return false;
  for (char c : w)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

// A decimal count (callgrind writes plain decimals in totals), without overflow.
bool count(std::string_view w, uint64_t& out) {
  if (w.empty() || w.size() > 20) return false;
  uint64_t v = 0;
  for (char c : w) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

void CallgrindParser::bad(const std::string& why) const {
  throw InstructionCountError("callgrind output '" + printable(name_) + "' line " +
                              std::to_string(line_no_) + ": " + why +
                              " (written by the workload's process: it is not a valid callgrind "
                              "file; see docs/instructions.md)");
}

void CallgrindParser::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    std::string_view piece = chunk.substr(0, nl);
    if (!long_line_) {
      size_t room = kMaxLine - buf_.size();
      if (piece.size() > room) {
        long_line_ = true;
        piece = piece.substr(0, room);
      }
      buf_.append(piece);
    }
    if (nl == std::string_view::npos) return;
    ++line_no_;
    line(buf_);
    buf_.clear();
    long_line_ = false;
    chunk.remove_prefix(nl + 1);
  }
}

void CallgrindParser::line(std::string_view l) {
  if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
  if (!header_seen_) {
    if (l != "# callgrind format") bad("expected '# callgrind format' first");
    header_seen_ = true;
    return;
  }
  if (l.find('\0') != std::string_view::npos &&
      (starts_with(l, "events:") || starts_with(l, "totals:") || starts_with(l, "part:")))
    bad("NUL byte");
  auto open_part = [&] {
    if (part_open_ && !part_has_totals_) bad("a part ends without a 'totals:' line");
    if (parts_.size() >= kMaxParts) bad("more than " + std::to_string(kMaxParts) + " parts");
    parts_.emplace_back();
    events_.clear();
    part_open_ = true;
    part_has_totals_ = false;
  };
  if (starts_with(l, "part:")) {
    uint64_t n = 0;
    auto w = words(l.substr(5));
    if (w.size() != 1 || !count(w[0], n)) bad("malformed 'part:' line");
    open_part();
  } else if (starts_with(l, "desc: Trigger:")) {
    if (!part_open_) open_part();
    std::string_view t = l.substr(14);
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    if (long_line_) bad("trigger longer than " + std::to_string(kMaxLine) + " bytes");
    parts_.back().trigger = std::string(t);
  } else if (starts_with(l, "events:")) {
    if (!part_open_) open_part();
    if (!events_.empty()) bad("a second 'events:' line in one part");
    auto w = words(l.substr(7));
    if (w.empty()) bad("'events:' names no event");
    if (w.size() > kMaxEvents) bad("more than " + std::to_string(kMaxEvents) + " events");
    for (auto e : w) {
      if (!event_name(e)) bad("event name '" + printable(std::string(e)) + "' is malformed");
      for (const auto& seen : events_)
        if (seen == e) bad("event '" + std::string(e) + "' is listed twice");
      events_.emplace_back(e);
    }
  } else if (starts_with(l, "totals:")) {
    if (!part_open_ || events_.empty()) bad("'totals:' before 'events:'");
    if (part_has_totals_) bad("a second 'totals:' line in one part");
    auto w = words(l.substr(7));
    // Callgrind leaves out trailing zero counts ("totals: 0" for nine events).
    if (w.empty() || w.size() > events_.size())
      bad("'totals:' has " + std::to_string(w.size()) + " values for " +
          std::to_string(events_.size()) + " events");
    auto& totals = parts_.back().totals;
    for (size_t i = 0; i < events_.size(); ++i) {
      uint64_t v = 0;
      if (i < w.size() && !count(w[i], v)) bad("'totals:' value is not a count");
      totals[events_[i]] = v;
    }
    part_has_totals_ = true;
  }
}

std::vector<CallgrindPart> CallgrindParser::finish() {
  if (!buf_.empty() || long_line_) {
    ++line_no_;
    line(buf_);
    buf_.clear();
    long_line_ = false;
  }
  if (!header_seen_) bad("empty file");
  if (parts_.empty()) bad("no profile part (truncated?)");
  if (!part_has_totals_) bad("the last part has no 'totals:' line (truncated?)");
  return std::move(parts_);
}

std::vector<CallgrindPart> parse_callgrind(std::string_view text, const std::string& name) {
  CallgrindParser p(name);
  p.feed(text);
  return p.finish();
}

}  // namespace benchrun::run
