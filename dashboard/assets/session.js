// When the server has ended the session (the idle timeout, or a log-out in another tab), every
// callback is answered 401. The page then goes to the log-in form, back to where it was after it,
// instead of standing still with stale data.
(function () {
    const original = window.fetch;
    let leaving = false;
    window.fetch = function (resource, init) {
        return original.call(this, resource, init).then(function (response) {
            const url = typeof resource === "string" ? resource : (resource && resource.url) || "";
            if (response.status === 401 && url.indexOf("_dash-update-component") !== -1 && !leaving) {
                leaving = true;
                const next = window.location.pathname + window.location.search;
                window.location.assign("/login?next=" + encodeURIComponent(next));
            }
            return response;
        });
    };
})();
