#include "api-error.h"

namespace herd_serve {

nlohmann::json ApiError::body() const {
  nlohmann::json e = {{"message", what()}, {"type", type_}, {"param", nullptr}, {"code", nullptr}};
  if (!param_.empty()) e["param"] = param_;
  if (!code_.empty()) e["code"] = code_;
  return {{"error", e}};
}

void bad_request(const std::string& param, const std::string& message) {
  throw ApiError(400, param.empty() ? message : param + ": " + message, "invalid_request_error", param);
}

ApiError from_status(const herd::Status& s) {
  switch (s.code()) {
    case herd::Status::Code::invalid_input: return ApiError(400, s.message(), "invalid_request_error");
    case herd::Status::Code::not_found: return ApiError(404, s.message(), "not_found_error");
    case herd::Status::Code::resource_exhausted:
      return ApiError(429, s.message(), "rate_limit_error", "", "resource_exhausted");
    case herd::Status::Code::cancelled: return ApiError(499, s.message(), "cancelled");
    case herd::Status::Code::ok:
    case herd::Status::Code::internal: break;
  }
  return ApiError(500, s.message(), "server_error");
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace herd_serve
