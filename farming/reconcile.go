package farming

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// plan is the desired state computed from the ledger.
type plan struct {
	want      map[string]Entry  // key -> entry that should run here
	retiring  map[string]bool   // older versions that may run until their sessions are gone
	conflicts map[string]string // key -> name owning its context (entries not deployed)
	tombs     map[string]Entry  // key -> tombstone
}

// computePlan applies the package doc's rules to the ledger's entries.
func computePlan(entries []Entry, undeployOld bool) plan {
	p := plan{want: map[string]Entry{}, retiring: map[string]bool{}, conflicts: map[string]string{}, tombs: map[string]Entry{}}
	newest := map[string]Entry{}   // name -> its greatest live entry
	byName := map[string][]Entry{} // name -> live entries
	for _, e := range entries {
		if e.Deleted {
			p.tombs[e.Key] = e
			continue
		}
		byName[e.Name] = append(byName[e.Name], e)
		if cur, ok := newest[e.Name]; !ok || e.After(cur) {
			newest[e.Name] = e
		}
	}
	// The owner of a context is the name whose newest entry is greatest.
	owner := map[string]Entry{} // context -> newest entry of the owning name
	for _, e := range newest {
		for _, c := range contextsOf(byName[e.Name]) {
			if cur, ok := owner[c]; !ok || e.After(cur) {
				owner[c] = e
			}
		}
	}
	for name, es := range byName {
		lost := ""
		for _, c := range contextsOf(es) {
			if o := owner[c]; o.Name != name {
				lost = o.Name
			}
		}
		for _, e := range es {
			switch {
			case lost != "":
				p.conflicts[e.Key] = lost
			case undeployOld && e.Key != newest[name].Key:
				p.retiring[e.Key] = true
			default:
				p.want[e.Key] = e
			}
		}
	}
	return p
}

func contextsOf(es []Entry) []string {
	var out []string
	for _, e := range es {
		if !slices.Contains(out, e.Context) {
			out = append(out, e.Context)
		}
	}
	return out
}

// result of one reconcile pass.
type result struct {
	transient bool          // something must be retried soon (a fetch failed)
	recheck   time.Duration // look again after this long even without changes (0: no need)
}

// reconcileLoop syncs the ledger once, then applies it whenever it changes, retrying failures.
func (m *Manager) reconcileLoop() {
	m.initialSync()
	m.synced.Store(true)
	backoff := m.cfg.RetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		case <-timer.C:
		}
		res := m.reconcile()
		if m.ctx.Err() != nil {
			return
		}
		next := res.recheck
		if res.transient {
			next = backoff
			backoff = min(2*backoff, m.cfg.RetryMax)
		} else {
			backoff = m.cfg.RetryMin
			if !m.ready.Load() {
				m.ready.Store(true)
				m.log.Info("farm ready", "event", "farm.ready", "deployed", len(m.Stats().Deployed))
			}
		}
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		if next > 0 {
			timer.Reset(next)
		}
	}
}

// reconcile makes the local deployments match the ledger's plan.
func (m *Manager) reconcile() result {
	var res result
	entries := m.Ledger()
	p := computePlan(entries, m.cfg.UndeployOldVersions)
	m.mu.Lock()
	m.conflict = p.conflicts
	m.mu.Unlock()

	// Undeploy first, so a context changing owner is free when the new owner deploys.
	m.deployMu.Lock()
	apps := appsByKey(m.dep.DeployedApps())
	for key, sum := range m.farmedCopy() {
		app, ok := apps[key]
		if !ok || app.SHA256 != sum {
			m.setFarmed(key, "") // replaced or removed by someone else
			continue
		}
		if _, ok := p.want[key]; ok {
			continue
		}
		if p.retiring[key] && app.Sessions > 0 {
			res.recheck = pickShorter(res.recheck, 2*time.Second)
			continue
		}
		m.undeploy(key, "no longer desired")
	}
	apps = appsByKey(m.dep.DeployedApps())
	for key, t := range p.tombs { // a tombstoned bundle running here without our record
		if app, ok := apps[key]; ok && t.SHA256 != "" && app.SHA256 == t.SHA256 {
			m.undeploy(key, "removed from the cluster")
		}
	}
	apps = appsByKey(m.dep.DeployedApps())
	m.deployMu.Unlock()

	now := m.cfg.Now()
	var fetchList []Entry
	for _, key := range sortedKeys(p.want) {
		e := p.want[key]
		if app, ok := apps[key]; ok && app.SHA256 == e.SHA256 {
			m.setFarmed(key, e.SHA256)
			m.clearFailure(key)
			continue
		}
		if f, ok := m.failure(key); ok && f.SHA256 == e.SHA256 {
			if wait := f.At.Add(m.cfg.FailedRetry).Sub(now); wait > 0 {
				res.recheck = pickShorter(res.recheck, wait)
				continue
			}
		}
		if err := checkSignature(m.cfg.Signing, e.File, e.SHA256, e.Sig); err != nil {
			m.recordFailure(e, err)
			res.recheck = pickShorter(res.recheck, m.cfg.FailedRetry)
			continue
		}
		if m.store.has(e.SHA256, e.File, e.Size) {
			m.deploy(e)
			continue
		}
		fetchList = append(fetchList, e)
	}
	if len(fetchList) > 0 {
		if m.fetchAll(fetchList) {
			res.transient = true
		}
	}
	m.gcStore(entries)
	return res
}

// fetchAll fetches bundles in parallel (at most Config.Parallel at once) and deploys each as it
// arrives. It reports whether some fetch failed.
func (m *Manager) fetchAll(list []Entry) bool {
	sem := make(chan struct{}, m.cfg.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	seen := map[string]bool{}
	for _, e := range list {
		if seen[e.SHA256] {
			continue
		}
		seen[e.SHA256] = true
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			if err := m.fetch(e); err != nil {
				if m.ctx.Err() == nil {
					m.log.Warn("bundle fetch failed", "event", "farm.fetch_failed", "key", e.Key, "bundle", e.File, "err", err)
				}
				m.setError(e.Key, err.Error())
				mu.Lock()
				failed = true
				mu.Unlock()
				return
			}
			m.log.Info("bundle fetched", "event", "farm.fetched", "key", e.Key, "bundle", e.File,
				"bytes", e.Size, "took", time.Since(start).Round(time.Millisecond))
			m.setError(e.Key, "")
			if m.ctx.Err() == nil {
				m.deploy(e)
			}
		}()
	}
	wg.Wait()
	return failed
}

// deploy deploys a stored bundle; a failure keeps what runs and is recorded.
func (m *Manager) deploy(e Entry) bool {
	m.deployMu.Lock()
	defer m.deployMu.Unlock()
	if cur, ok := m.currentEntry(e.Key); !ok || cur.SHA256 != e.SHA256 || cur.Deleted {
		return false // the ledger moved on meanwhile; the next pass handles it
	}
	start := time.Now()
	ctx := context.WithoutCancel(m.ctx)
	if err := m.dep.DeployBundle(ctx, m.store.path(e.SHA256, e.File)); err != nil {
		m.recordFailure(e, err)
		return false
	}
	m.setFarmed(e.Key, e.SHA256)
	m.clearFailure(e.Key)
	m.log.Info("farmed bundle deployed", "event", "farm.deployed", "key", e.Key, "bundle", e.File,
		"sha256", short(e.SHA256), "origin", e.Origin, "took", time.Since(start).Round(time.Millisecond))
	return true
}

// undeploy removes a farmed app; deployMu is held.
func (m *Manager) undeploy(key, why string) {
	err := m.dep.UndeployBundle(context.WithoutCancel(m.ctx), key)
	if err != nil {
		if _, still := appsByKey(m.dep.DeployedApps())[key]; still {
			m.log.Error("farmed app not undeployed", "event", "farm.undeploy_failed", "key", key, "err", err)
			return
		}
	}
	m.setFarmed(key, "")
	m.log.Info("farmed app undeployed", "event", "farm.undeployed", "key", key, "reason", why)
}

func (m *Manager) currentEntry(key string) (Entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.led.entries[key]
	return e, ok
}

func (m *Manager) farmedCopy() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for k, v := range m.farmed {
		out[k] = v
	}
	return out
}

// setFarmed records (or, with "", forgets) what farming deployed under key.
func (m *Manager) setFarmed(key, sum string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sum == "" {
		delete(m.farmed, key)
	} else {
		m.farmed[key] = sum
	}
}

func (m *Manager) recordFailure(e Entry, err error) {
	m.mu.Lock()
	prev, had := m.failed[e.Key]
	m.failed[e.Key] = failure{SHA256: e.SHA256, Err: err.Error(), At: m.cfg.Now()}
	m.mu.Unlock()
	if !had || prev.SHA256 != e.SHA256 || prev.Err != err.Error() {
		m.log.Error("farmed bundle refused here", "event", "farm.deploy_failed", "key", e.Key, "bundle", e.File,
			"sha256", short(e.SHA256), "origin", e.Origin, "err", err)
	}
}

func (m *Manager) failure(key string) (failure, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.failed[key]
	return f, ok
}

func (m *Manager) clearFailure(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.failed, key)
}

// setError records (or clears, with "") the last transient error about key.
func (m *Manager) setError(key, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg == "" {
		delete(m.errs, key)
	} else {
		m.errs[key] = msg
	}
}

// gcStore drops stored bundles no live entry names, unless a fetch is writing them.
func (m *Manager) gcStore(entries []Entry) {
	keep := map[string]bool{}
	for _, e := range entries {
		if !e.Deleted {
			keep[e.SHA256] = true
		}
	}
	m.mu.Lock()
	for sum := range m.pending {
		keep[sum] = true
	}
	for _, w := range m.watch {
		keep[w.SHA256] = true
	}
	for sum := range m.keep {
		keep[sum] = true
	}
	for _, e := range m.led.entries { // entries merged since the pass began
		if !e.Deleted {
			keep[e.SHA256] = true
		}
	}
	m.mu.Unlock()
	m.store.gc(keep)
}

func appsByKey(apps []App) map[string]App {
	out := make(map[string]App, len(apps))
	for _, a := range apps {
		out[a.Key] = a
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, strings.Compare)
	return out
}

func pickShorter(a, b time.Duration) time.Duration {
	if a == 0 || b < a {
		return b
	}
	return a
}
