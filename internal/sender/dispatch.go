package sender

import "context"

// dispatchHookKey is the context key of BeforeDispatch's function.
type dispatchHookKey struct{}

// BeforeDispatch returns a context that makes a provider call fn right before it writes a
// request that may have an effect (a send), after every wait of its own (the API-call
// ceiling). fn is where the caller records "this send may now reach the provider". An
// error from fn stops the send before anything is written: Send returns a Transient
// *Error wrapping fn's error (errors.Is works).
//
// fn is not called for a send refused before that point (a message that fails
// ValidateMessage, a CallLimiter refusal), nor for requests without an effect
// (status polls, quota reads, lookups). It gets the context passed to Send.
func BeforeDispatch(ctx context.Context, fn func(context.Context) error) context.Context {
	return context.WithValue(ctx, dispatchHookKey{}, fn)
}

// runDispatchHook calls the function BeforeDispatch put into ctx, if any.
func runDispatchHook(ctx context.Context) error {
	fn, _ := ctx.Value(dispatchHookKey{}).(func(context.Context) error)
	if fn == nil {
		return nil
	}
	return fn(ctx)
}
