package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/wasmq/wasmq/abi"
	"github.com/wasmq/wasmq/store"
)

// Owned is a schedule of wasmq.toml with the tenant it belongs to.
type Owned struct {
	Tenant string
	Definition
}

// Apply makes the store's config-defined schedules those of the file,
// which is their source (as Oban's and River's periodic jobs are their
// code's): each entry is created, or its definition replaced when it
// changed; a config-defined schedule no longer in the file is deleted.
// Whether a schedule is paused is the operators' and survives restarts:
// `paused` in the file applies when it is created. Errors name the key,
// schedules[i].field; an entry whose name an API-made schedule of its
// tenant has already is refused.
func (s *Service) Apply(ctx context.Context, entries []Owned) error {
	keep := map[[2]string]bool{}
	for i, e := range entries {
		prefix := fmt.Sprintf("schedules[%d].", i)
		sc, err := s.check(ctx, e.Tenant, e.Definition)
		if err != nil {
			return prefixed(prefix, err)
		}
		if keep[[2]string{e.Tenant, e.Name}] {
			return fmt.Errorf("%sname: tenant %q has two schedules named %q", prefix, e.Tenant, e.Name)
		}
		keep[[2]string{e.Tenant, e.Name}] = true
		sc.Source = store.SourceConfig
		cur, err := s.Store.GetSchedule(ctx, e.Tenant, e.Name)
		switch {
		case errors.Is(err, abi.ErrNotFound):
			// The operator's file is not bound by the tenant's max_schedules
			// (its schedules count toward it, for the tenant's own).
			if _, err := s.Store.CreateSchedule(ctx, sc, 0); err != nil && !errors.Is(err, abi.ErrConflict) {
				return prefixed(prefix, err)
			}
			continue // a conflict: another node created it from its file at the same moment
		case err != nil:
			return err
		case cur.Source != store.SourceConfig:
			return fmt.Errorf("%sname: tenant %q has a schedule %q made over the API; delete it or rename this one", prefix, e.Tenant, e.Name)
		case sameDefinition(cur, sc):
			continue
		}
		if _, err := s.Store.UpdateSchedule(ctx, e.Tenant, e.Name, func(x *store.Schedule) error {
			paused := x.Paused
			*x = sc
			x.Paused = paused
			return nil
		}); err != nil {
			return prefixed(prefix, err)
		}
	}
	all, err := s.Store.ListSchedules(ctx, "")
	if err != nil {
		return err
	}
	for _, sc := range all {
		if sc.Source == store.SourceConfig && !keep[[2]string{sc.Tenant, sc.Name}] {
			if err := s.Store.DeleteSchedule(ctx, sc.Tenant, sc.Name); err != nil && !errors.Is(err, abi.ErrNotFound) {
				return err
			}
		}
	}
	s.changed()
	return nil
}

func sameDefinition(a, b store.Schedule) bool {
	return a.Cron == b.Cron && a.Timezone == b.Timezone && a.MissedRuns == b.MissedRuns &&
		a.CatchUpMax == b.CatchUpMax && slices.Equal(a.Template, b.Template)
}

func prefixed(prefix string, err error) error {
	var fe *abi.FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s%s: %s", prefix, fe.Field, fe.Msg)
	}
	return fmt.Errorf("%s%w", prefix, err)
}
