// A stored frame's image as an object URL (fetched with the API token, which an <img> could not
// send), with its natural size.
import { useQuery } from "@tanstack/react-query";
import { fetchBlob } from "../../api/client";

export interface FrameImage {
  url: string;
  width: number;
  height: number;
}

export function useFrameImage(projectId: string, frameId: string | undefined) {
  return useQuery({
    queryKey: ["projects", projectId, "frames", frameId, "image"],
    enabled: !!frameId,
    staleTime: Infinity,
    gcTime: 5 * 60 * 1000,
    queryFn: async (): Promise<FrameImage> => {
      const blob = await fetchBlob(`/api/v1/projects/${projectId}/frames/${frameId}`);
      const url = URL.createObjectURL(blob);
      const size = await new Promise<{ width: number; height: number }>((resolve, reject) => {
        const image = new Image();
        image.onload = () => resolve({ width: image.naturalWidth, height: image.naturalHeight });
        image.onerror = () => reject(new Error("The frame image could not be decoded."));
        image.src = url;
      });
      return { url, ...size };
    },
  });
}
