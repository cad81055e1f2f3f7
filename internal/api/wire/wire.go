// Package wire holds what every HTTP surface of kura writes the same way:
// the Azure error body, JSON answers, the api-version check, bearer token
// parsing and the status of each domain error kind. Each api package keeps
// its own codes and messages; this package keeps them from being written
// four times, slightly differently.
package wire

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-project/kura/internal/fault"
)

// Error writes the error body that Key Vault, MAA and Confidential Ledger
// share: {"error":{"code","message"}}, with the code also in
// x-ms-error-code, as Azure services send it.
func Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	JSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// JSON answers v with a Content-Length, so large tokens are not chunked.
// Answers that carry secrets or state set Cache-Control: no-store first.
func JSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]any{"error": map[string]string{"code": "InternalError", "message": "encoding the answer failed"}})
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// Status is the HTTP status of a domain error kind.
func Status(k fault.Kind) int {
	switch k {
	case fault.BadInput:
		return http.StatusBadRequest
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Denied:
		return http.StatusForbidden
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// APIVersion checks the api-version query parameter against the versions
// a surface speaks. The error says which are.
func APIVersion(r *http.Request, supported []string) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return &fault.Error{Kind: fault.BadInput, Field: "api-version", Code: "MissingApiVersionParameter",
			Msg: "api-version is required as a query parameter (one of " + strings.Join(supported, ", ") + ")"}
	}
	if !slices.Contains(supported, v) {
		return &fault.Error{Kind: fault.BadInput, Field: "api-version", Code: "UnsupportedApiVersion",
			Msg: fmt.Sprintf("api-version %q is not supported (one of %s)", v, strings.Join(supported, ", "))}
	}
	return nil
}

// Bearer returns the token of an Authorization: Bearer header. The scheme
// is matched without regard to case (RFC 9110 §11.1, RFC 6750 §2.1).
func Bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// RequestID is the request id the server's middleware set, for messages
// that point at the log.
func RequestID(w http.ResponseWriter) string { return w.Header().Get("x-ms-request-id") }

type principalKey struct{}

// WithPrincipalSlot returns ctx with room for the name of the principal a
// surface authenticates, for the access log to read once the request is
// served.
func WithPrincipalSlot(ctx context.Context) (context.Context, *string) {
	slot := new(string)
	return context.WithValue(ctx, principalKey{}, slot), slot
}

// NotePrincipal records the authenticated principal of the request in its
// slot, if the server made one.
func NotePrincipal(ctx context.Context, name string) {
	if slot, ok := ctx.Value(principalKey{}).(*string); ok {
		*slot = name
	}
}
