package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/wasmq/wasmq/schedule"
	"github.com/wasmq/wasmq/store"
)

// The routes of periodic jobs (docs/schedules.md). A schedule is named
// per tenant, so acting on one names its tenant: the caller's own, or for
// the admin the ?tenant= of the request.
func (s *server) scheduleRoutes() {
	s.route("GET /v1/schedules", s.listSchedules)
	s.route("POST /v1/schedules", s.createSchedule)
	s.route("GET /v1/schedules/{name}", s.getSchedule)
	s.route("PATCH /v1/schedules/{name}", s.patchSchedule)
	s.route("DELETE /v1/schedules/{name}", bodiless("", s.deleteSchedule))
	// POST /v1/schedules/{name}:pause, :resume and :run: a wildcard is a
	// whole path segment, so the action is cut from the name here (a
	// name never holds ':').
	s.route("POST /v1/schedules/{name}", bodiless("", s.scheduleAction))
}

func (s *server) schedulesOn() error {
	if s.Schedules == nil {
		return &httpError{404, "not_found", "schedules are not served by this node", ""}
	}
	return nil
}

func (s *server) listSchedules(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.schedulesOn(); err != nil {
		return err
	}
	q := r.URL.Query()
	for k, vs := range q {
		if k != "tenant" && k != "limit" && k != "cursor" {
			return &httpError{400, "invalid_argument", fmt.Sprintf("unknown query parameter %q", k), k}
		}
		if len(vs) > 1 {
			return badParam(k, "given %d times: give it once", len(vs))
		}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxSchedulePage {
			return &httpError{422, "invalid_argument", fmt.Sprintf("limit must be an integer from 1 to %d", store.MaxSchedulePage), "limit"}
		}
		limit = n
	}
	vs, next, err := s.Schedules.List(r.Context(), c.scope(r), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, map[string]any{"schedules": vs, "next_cursor": next})
}

func (s *server) createSchedule(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.scheduleOwner(c, r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var d schedule.Definition
	if err := schedule.Decode(body, &d); err != nil {
		return err
	}
	v, err := s.Schedules.Create(r.Context(), owner, d)
	if err != nil {
		return err
	}
	return writeJSON(w, 201, v)
}

// scheduleOwner is the tenant whose schedules the request acts on, once
// schedules are served at all.
func (s *server) scheduleOwner(c caller, r *http.Request) (string, error) {
	if err := s.schedulesOn(); err != nil {
		return "", err
	}
	return s.owner(c, r)
}

func (s *server) getSchedule(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.scheduleOwner(c, r)
	if err != nil {
		return err
	}
	v, err := s.Schedules.Get(r.Context(), owner, r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, 200, v)
}

func (s *server) patchSchedule(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.scheduleOwner(c, r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	v, err := s.Schedules.Patch(r.Context(), owner, r.PathValue("name"), body)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, v)
}

func (s *server) deleteSchedule(w http.ResponseWriter, r *http.Request, c caller) error {
	owner, err := s.scheduleOwner(c, r)
	if err != nil {
		return err
	}
	if err := s.Schedules.Delete(r.Context(), owner, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) scheduleAction(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := s.schedulesOn(); err != nil {
		return err
	}
	name, action, ok := strings.Cut(r.PathValue("name"), ":")
	if !ok {
		return &httpError{405, "method_not_allowed", "POST a schedule's action: /v1/schedules/{name}:pause, :resume or :run", ""}
	}
	owner, err := s.owner(c, r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	switch action {
	case "pause", "resume":
		v, err := s.Schedules.SetPaused(ctx, owner, name, action == "pause")
		if err != nil {
			return err
		}
		return writeJSON(w, 200, v)
	case "run":
		j, err := s.Schedules.Run(ctx, owner, name)
		if err != nil {
			return err
		}
		return writeJSON(w, 201, jobOut{JobDoc: j.Doc()})
	}
	return &httpError{404, "not_found", fmt.Sprintf("no schedule action %q (pause, resume or run)", action), ""}
}
