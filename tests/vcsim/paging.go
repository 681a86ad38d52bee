package main

import (
	"strconv"
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// PagingCollector adds what a real vCenter does and govmomi 0.24's simulator does not:
// RetrievePropertiesEx returns at most RetrieveOptions.MaxObjects objects and a token,
// and ContinueRetrievePropertiesEx hands out the following pages.
// It embeds the simulator's collector by value: the simulator makes a fresh zero instance
// of the registered type for every session.
type PagingCollector struct {
	simulator.PropertyCollector
	mu      sync.Mutex
	pending map[string]pendingPages
	next    int
}

type pendingPages struct {
	objects []types.ObjectContent
	size    int
}

func (pc *PagingCollector) page(objects []types.ObjectContent, size int) types.RetrieveResult {
	if size <= 0 || len(objects) <= size {
		return types.RetrieveResult{Objects: objects}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.pending == nil {
		pc.pending = map[string]pendingPages{}
	}
	pc.next++
	token := "page-" + strconv.Itoa(pc.next)
	pc.pending[token] = pendingPages{objects: objects[size:], size: size}
	return types.RetrieveResult{Objects: objects[:size], Token: token}
}

func (pc *PagingCollector) RetrievePropertiesEx(ctx *simulator.Context, r *types.RetrievePropertiesEx) soap.HasFault {
	res := pc.PropertyCollector.RetrievePropertiesEx(ctx, r)
	body, ok := res.(*methods.RetrievePropertiesExBody)
	if !ok || body.Res == nil || body.Res.Returnval == nil {
		return res
	}
	result := pc.page(body.Res.Returnval.Objects, int(r.Options.MaxObjects))
	body.Res.Returnval = &result
	return body
}

func (pc *PagingCollector) ContinueRetrievePropertiesEx(ctx *simulator.Context, r *types.ContinueRetrievePropertiesEx) soap.HasFault {
	body := &methods.ContinueRetrievePropertiesExBody{}
	pc.mu.Lock()
	pending, ok := pc.pending[r.Token]
	delete(pc.pending, r.Token)
	pc.mu.Unlock()
	if !ok {
		body.Fault_ = simulator.Fault("unknown token", &types.InvalidArgument{InvalidProperty: "token"})
		return body
	}
	body.Res = &types.ContinueRetrievePropertiesExResponse{Returnval: pc.page(pending.objects, pending.size)}
	return body
}

func (pc *PagingCollector) CancelRetrievePropertiesEx(ctx *simulator.Context, r *types.CancelRetrievePropertiesEx) soap.HasFault {
	pc.mu.Lock()
	delete(pc.pending, r.Token)
	pc.mu.Unlock()
	return &methods.CancelRetrievePropertiesExBody{Res: &types.CancelRetrievePropertiesExResponse{}}
}

func installPagingCollector(ref types.ManagedObjectReference) {
	collector := &PagingCollector{}
	collector.Self = ref
	simulator.Map.Put(collector)
}
