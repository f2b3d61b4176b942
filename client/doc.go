// Package client is a Go client for Stint's HTTP API (/api/v1): dispatch
// tasks, read and list them, cancel them, follow their events, and read
// the workers and the server's status. The stint CLI's client commands use
// it. The documents it sends and reads are the types of package apiv1.
//
// # Connecting
//
// New takes the server's URL and options:
//
//	c, err := client.New("http://127.0.0.1:7710", client.WithToken(os.Getenv("STINT_TOKEN")))
//
// Every method takes a context, which bounds the request (and, for Events,
// the whole stream). A Client is safe for concurrent use.
//
// # Tasks
//
// Dispatch answers as soon as the server has stored the task (202 Accepted)
// with the task's id; Task reads it again:
//
//	id, err := c.Dispatch(ctx, apiv1.DispatchTask{
//		Name:               "repo.sync",
//		Args:               json.RawMessage(`{"repository": 42}`),
//		ExclusiveResources: []string{"repo:42"},
//	})
//	task, err := c.Task(ctx, id)
//	fmt.Println(task.State, task.Final())
//
// ListTasks reads one page of tasks; its url.Values are the API's filters
// (state, state__in, name, name__contains, worker, created_at__gte, limit,
// offset, ordering...). AllTasks follows the pages' next links and returns
// every match. CancelTask cancels a task: a waiting task is canceled at
// once, a running one becomes canceling until its runner stops it.
//
// # Following tasks
//
// Events subscribes to the server-sent events of some tasks, of some task
// groups, or of all tasks; each event carries a task's state and progress
// reports after a change. To follow a task without missing its end,
// subscribe first, then read its state, then read events until it is final:
//
//	stream, err := c.Events(ctx, []uuid.UUID{id}, nil)
//	defer stream.Close()
//	task, err := c.Task(ctx, id)
//	for state := task.State; !apiv1.FinalState(state); {
//		ev, err := stream.Next() // io.EOF when the server closes the stream
//		if err != nil {
//			return err
//		}
//		state = ev.State
//	}
//
// WaitForTasks does this for many tasks: it reconnects when the stream
// breaks, re-reads the states when the server says events were lost and
// now and then as a safety net, and tells each change to a callback.
// WaitForAll waits until no task is incomplete, WaitForTaskGroup until a
// group is sealed with every task final; the stint CLI's "task wait" and
// "group wait" are these:
//
//	tasks, err := c.WaitForTasks(ctx, ids, client.WaitOptions{
//		OnChange: func(t *client.WaitedTask, stateChanged bool) { fmt.Println(t.ID, t.State) },
//	})
//
// # Task groups
//
// A task group is a set of tasks followed as one. CreateTaskGroup creates
// an empty group (dispatch into it with DispatchTask.TaskGroup, then seal
// it with SealTaskGroup) or, given tasks, dispatches them all into a new
// sealed group at once:
//
//	tasks := []apiv1.DispatchTask{{Name: "stint.noop"}, {Name: "stint.noop"}}
//	_, groupID, err := c.CreateTaskGroup(ctx, apiv1.CreateTaskGroup{Tasks: &tasks})
//	group, err := c.TaskGroup(ctx, groupID)
//	fmt.Println(group.Counts["completed"], group.Done)
//
// ListTaskGroups lists groups; CancelTaskGroup cancels every incomplete
// task of a group; Events with a group follows its tasks, including those
// dispatched into it later. DeleteTask removes one final task, PurgeTasks
// (admins only) dispatches a stint.purge task that removes old ones.
//
// # Errors
//
// An answer with a 4xx or 5xx status is an *APIError holding the status and
// the server's one-line detail, such as 400 "name: unknown task name". A
// server that cannot be reached gives an error that names it. IsStatus tells
// one status from another:
//
//	if _, err := c.CancelTask(ctx, id); client.IsStatus(err, http.StatusConflict) {
//		// the task had already ended
//	}
package client
